"""Model registry: versions per name, name@N / id lookup, export/import round trip, corrupt or
mismatched weights fail with a message naming the model."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch

from matstore import models
from matstore.compositions import CompositionBatch
from matstore.registry import (ModelError, export_models, import_models, list_models, load_model,
                               save_model, show_model)
from _store_data import new_store

torch.set_num_threads(1)


def _elemnet(seed: int):
    torch.manual_seed(seed)
    m = models.build("elemnet", {"n_inputs": 86})
    m.fit_scaling(np.zeros((2, 86)), np.array([-1.0, 1.0]), minmax=False)
    return m.eval()


def _save(store, name, module, kind="elemnet", config=None, **kw):
    cfg = config or models.config_dict(module.config)
    return save_model(store, name, kind, module, cfg, {"property": "formation_energy_per_atom",
                      "featurizer": "fractions"}, "SELECT 1", 10, "abc", {"seed": 0}, {"test": {"mae": 0.1}},
                      "cpu", 0, **kw)


@pytest.fixture
def batch(read_formulas):
    f = read_formulas("oqmd/formation_enthalpy_train.csv")["formula"].to_list()[:200]
    return CompositionBatch.from_formulas(f)


def test_versions_and_refs(store):
    a = _save(store, "fe", _elemnet(1))
    b = _save(store, "fe", _elemnet(2))
    c = _save(store, "other", _elemnet(3))
    assert (a.version, b.version, c.version) == (1, 2, 1)
    assert load_model(store, "fe").model_id == b.model_id
    assert load_model(store, "fe@1").model_id == a.model_id
    assert load_model(store, a.model_id).version == 1
    assert load_model(store, str(c.model_id)).name == "other"
    assert list_models(store).height == 3
    rec = show_model(store, "fe@2")
    assert rec["software"]["torch"] == torch.__version__ and "weights" not in rec
    assert rec["weights_sha256"] == b.weights_sha256
    with pytest.raises(ModelError, match="no model 'nope'.*fe, other"):
        load_model(store, "nope")
    with pytest.raises(ModelError, match="version after '@'"):
        load_model(store, "fe@x")
    with pytest.raises(ModelError, match="no '@'"):
        _save(store, "a@b", _elemnet(1))


def test_predict_identical_after_reload(store, batch):
    m = _elemnet(4)
    _save(store, "fe", m)
    from matstore.features import get

    x = get("fractions").transform(batch)
    with torch.no_grad():
        direct = m(torch.as_tensor(x, dtype=torch.float32)).numpy()
    loaded = load_model(store, "fe")
    assert loaded.property == "formation_energy_per_atom" and loaded.featurizer == "fractions"
    assert np.array_equal(loaded.predict(batch), direct.astype(np.float64))


def test_export_import_round_trip(store, tmp_path, batch):
    from sklearn.ensemble import RandomForestRegressor  # noqa: F401

    _save(store, "fe", _elemnet(5))
    rf = models.build("rf", {"n_estimators": 5, "n_jobs": 1})
    from matstore.features import get

    x = get("magpie").transform(batch)
    y = np.linspace(-1, 1, len(batch))
    rf.fit(x, y)
    save_model(store, "rf", "rf", rf, rf.config, {"property": "band_gap", "featurizer": "magpie"},
               "SELECT 1", len(y), "h", {}, {}, "cpu", 0)
    path = tmp_path / "models.parquet"
    assert export_models(store, path) == 2
    other = new_store(tmp_path / "other.duckdb")
    res = import_models(other, path)
    assert sorted(m.ref for m in res.imported) == ["fe@1", "rf@1"] and not res.skipped
    for name in ("fe", "rf"):
        a, b = load_model(store, name), load_model(other, name)
        assert a.record["weights_sha256"] == b.record["weights_sha256"]
        assert a.record["config"] == b.record["config"] and a.record["metrics"] == b.record["metrics"]
        assert np.array_equal(a.predict(batch), b.predict(batch))
    again = import_models(other, path)  # same weights under the same name: skipped
    assert not again.imported and len(again.skipped) == 2
    assert export_models(store, tmp_path / "one.parquet", ["fe@1"]) == 1


def test_corrupt_weights_fail_clearly(store):
    mv = _save(store, "fe", _elemnet(6))
    with store.transaction() as con:  # flip bytes in the stored blob
        w = con.execute("SELECT weights FROM model_versions WHERE model_id = ?", [mv.model_id]).fetchall()[0][0]
        bad = bytes(w[:100]) + bytes([w[100] ^ 0xFF]) + bytes(w[101:])
        con.execute("UPDATE model_versions SET weights = ? WHERE model_id = ?", [bad, mv.model_id])
    with pytest.raises(ModelError, match=r"fe@1 .*corrupt.*sha256"):
        load_model(store, "fe")


def _store_weights_of(store, model_id: int, module) -> None:
    """Replace a version's weights with another module's, under a matching sha256."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    w = buf.getvalue()
    with store.transaction() as con:
        con.execute("UPDATE model_versions SET weights = ?, weights_sha256 = ? WHERE model_id = ?",
                    [w, hashlib.sha256(w).hexdigest(), model_id])


def test_mismatched_weights_fail_clearly(store):
    mv = _save(store, "fe", _elemnet(7))
    # config says 86 inputs; store weights of a 10-input net with a matching sha256
    _store_weights_of(store, mv.model_id, models.build("elemnet", {"n_inputs": 10}))
    with pytest.raises(ModelError, match=r"fe@1 .*weight x_min has shape \(10,\).*needs \(86,\)"):
        load_model(store, "fe")
    _store_weights_of(store, mv.model_id, models.build("cnn", {}))
    with pytest.raises(ModelError, match=r"fe@1 .*do not fit the elemnet config: missing"):
        load_model(store, "fe")


def test_import_rejects_bad_file_and_leaves_store(store, tmp_path):
    _save(store, "fe", _elemnet(8))
    path = tmp_path / "m.parquet"
    export_models(store, path)
    import polars as pl

    df = pl.read_parquet(path).with_columns(pl.lit("0" * 64).alias("weights_sha256"))
    df.write_parquet(tmp_path / "bad.parquet")
    other = new_store(tmp_path / "o.duckdb")
    with pytest.raises(ModelError, match="corrupt"):
        import_models(other, tmp_path / "bad.parquet")
    assert list_models(other).height == 0
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(ModelError, match="not a matstore model export"):
        import_models(other, tmp_path / "junk.parquet")
