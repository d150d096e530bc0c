"""A model kind defined in this file alone (config + module + fit + predict), registered with
matstore.models.register and a training preset, goes through train -> save -> export -> import
-> merge -> reload -> predict, by the Python API and by the CLI, with no other module edited
(issue 23: a kind is one unit)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import numpy as np
import pytest
from click.testing import CliRunner

from matstore import models
from matstore.cli import main
from matstore.merge import merge
from matstore.models.loops import regression_metrics
from matstore.predict import predict
from matstore.registry import export_models, import_models, load_model
from matstore.store import Store
from matstore.training import presets, train
from _store_data import new_store


@dataclass
class RidgeConfig:
    alpha: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


class Ridge:
    """Least squares with an L2 penalty on a featurizer's vector, plus an intercept."""

    def __init__(self, config: RidgeConfig):
        self.config = config
        self.coef = np.zeros(0)

    def fit(self, x, y):
        a = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
        self.coef = np.linalg.solve(a.T @ a + self.config.alpha * np.eye(a.shape[1]), a.T @ y)
        return self

    def predict(self, x):
        return np.hstack([x, np.ones((len(x), 1))]) @ self.coef


class RidgeFamily(models.ModelFamily):
    name, config, module, predictor = "ridge", RidgeConfig, Ridge, True

    def fit(self, module, data):
        sp = data.split
        module.fit(data.x[sp.train], data.y[sp.train])
        return models.FitResult(module, {role: regression_metrics(data.y[idx], module.predict(data.x[idx]))
                                         for role, idx in (("val", sp.val), ("test", sp.test))})

    def predict(self, module, x, device, batch_size=None):
        return module.predict(x)

    def serialize(self, module, card):
        buf = io.BytesIO()
        np.save(buf, module.coef, allow_pickle=False)
        return buf.getvalue()

    def load(self, weights, record, members, ref):
        module = self.build(record["config"])
        module.coef = np.load(io.BytesIO(weights), allow_pickle=False)
        return module


FE = "formation_energy_per_atom"
SELECT = f"SELECT composition_id FROM composition_properties_by_source WHERE {FE} IS NOT NULL"


@pytest.fixture
def ridge_kind():
    models.register(RidgeFamily())
    presets.register(presets.Preset("ridge-fe", "ridge", RidgeConfig, SELECT, featurizer="fractions",
                                    property=FE, description="ridge regression (a plug-in kind)"))
    yield
    presets.unregister("ridge-fe")
    models.unregister("ridge")


def _filled(path, read_formulas, rows: slice) -> Store:
    """A store with real OQMD formation energies, ingested as a user would (csv source)."""
    from matstore.ingest import run

    store = new_store(path)
    csv = path.with_suffix(".csv")
    read_formulas("oqmd/formation_enthalpy_train.csv")[rows].write_csv(csv)
    run(store, "csv", file=str(csv), props=[f"{FE}=target:eV/atom"])
    return store


def test_a_kind_from_one_file_trains_saves_moves_and_predicts(ridge_kind, read_formulas, tmp_path):
    store = _filled(tmp_path / "a.duckdb", read_formulas, slice(0, 400))
    mv = train(store, "ridge-fe", progress=False)
    assert mv.kind == "ridge" and mv.ref == "ridge-fe@1"
    assert 0 < mv.metrics["test"]["mae"] < 1.0          # a real fit of formation energies
    card = json.loads(store.query("SELECT card FROM model_versions")["card"][0])
    assert card["kind"] == "ridge" and card["inputs"]["featurizer"] == "fractions"
    lm = load_model(store, "ridge-fe")
    assert lm.family is models.get("ridge") and lm.members is None

    out = tmp_path / "ridge.parquet"
    assert export_models(store, out, ["ridge-fe@1"]) == 1
    other = _filled(tmp_path / "b.duckdb", read_formulas, slice(400, 600))
    assert [m.ref for m in import_models(other, out).imported] == ["ridge-fe@1"]
    res = predict(other, "ridge-fe", progress=False)
    assert res.n_predicted == 200 and res.n_null == 0
    third = _filled(tmp_path / "c.duckdb", read_formulas, slice(600, 700))
    merge(third, other.path)
    back = load_model(third, "ridge-fe@1")
    from matstore.compositions import CompositionBatch

    b = CompositionBatch.from_formulas(["Fe2O3", "NaCl", "Al2O3"])
    assert np.allclose(back.predict(b), lm.predict(b))  # the merged copy predicts as the original
    assert np.isfinite(back.predict(b)).all()
    got = third.query("SELECT count(*) AS n FROM predictions p JOIN model_versions m USING (model_id) "
                      "WHERE m.kind = 'ridge'")["n"][0]
    assert got == 200                                   # the predictions came along with the merge


def test_a_kind_from_one_file_through_the_cli(ridge_kind, read_formulas, tmp_path):
    store = _filled(tmp_path / "a.duckdb", read_formulas, slice(0, 300))
    r = CliRunner()
    db = ["--db", store.path]
    res = r.invoke(main, ["train", *db, "--model", "ridge-fe", "--no-progress"])
    assert res.exit_code == 0 and "saved ridge-fe@1" in res.output, res.output
    out = tmp_path / "m.parquet"
    assert r.invoke(main, ["models", "export", str(out), "ridge-fe", *db]).exit_code == 0
    other = _filled(tmp_path / "b.duckdb", read_formulas, slice(300, 400))
    res = r.invoke(main, ["models", "import", str(out), "--db", other.path])
    assert res.exit_code == 0 and "imported ridge-fe@1" in res.output, res.output
    res = r.invoke(main, ["predict", "--db", other.path, "--model", "ridge-fe", "--no-progress"])
    assert res.exit_code == 0, res.output
    n = other.query("SELECT count(*) AS n FROM predictions")["n"][0]
    assert n == 100
    res = r.invoke(main, ["merge", "--db", store.path, other.path])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["models", "show", "ridge-fe@1", *db])
    assert res.exit_code == 0 and '"kind": "ridge"' in res.output.replace("'", '"'), res.output


def test_an_unregistered_kind_is_refused_by_name(read_formulas, tmp_path):
    with pytest.raises(models.ModelConfigError, match="unknown model kind 'ridge'"):
        presets.register(presets.Preset("ridge-x", "ridge", RidgeConfig, SELECT, featurizer="fractions",
                                        property=FE))
