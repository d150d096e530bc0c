"""featurize_store / validate_store / CLI on a small store."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from matstore.compositions import CompositionBatch, parse
from matstore.featurize import featurize_store, validate_store
from matstore.features import get
from matstore.store import append

FORMULAS = ["NaCl", "Fe2O3", "Kr2O", "Fe9O", "LiCo2O4", "CuZn", "Og2O", "Ba2YCu3O7", "SiO2", "Fe"]


@pytest.fixture
def filled(store):
    comps = [parse(f) for f in FORMULAS]
    rows = pl.DataFrame({"composition_id": [c.composition_id for c in comps],
                         "formula": [c.formula for c in comps],
                         "elements": [list(c.elements) for c in comps],
                         "counts": [list(c.counts) for c in comps],
                         "n_elements": [c.n_elements for c in comps],
                         "n_atoms": [c.n_atoms for c in comps]},
                        schema_overrides={"counts": pl.List(pl.Int32)})
    with store.transaction() as con:
        append(con, "compositions", rows)
    return store, comps


def test_featurize_writes_once_and_matches_transform(filled):
    store, comps = filled
    r = featurize_store(store, "magpie", batch_size=3, progress=False)
    assert (r.pending, r.written) == (len(comps), len(comps))
    assert featurize_store(store, "magpie", progress=False).written == 0
    got = store.query("SELECT composition_id, vector FROM features WHERE featurizer = 'magpie'")
    by_id = dict(zip(got["composition_id"], got["vector"].to_list()))
    ref = get("magpie").transform(CompositionBatch.from_compositions(comps))
    stored = np.array([by_id[c.composition_id] for c in comps])
    np.testing.assert_allclose(stored, ref.astype(np.float32), rtol=1e-6)


def test_unencodable_rows_get_empty_vectors(filled):
    store, comps = filled
    r = featurize_store(store, "onehot", progress=False)
    assert r.not_encodable == 3  # Kr2O, Og2O (not in the 85), FeO9 (count 9)
    got = store.query("SELECT formula, len(vector) AS n FROM features JOIN compositions USING (composition_id)")
    lens = dict(zip(got["formula"], got["n"]))
    assert lens["Kr2O"] == 0 and lens["NaCl"] == 680 and sum(v == 0 for v in lens.values()) == 3


def test_new_version_recomputes(filled, monkeypatch):
    from matstore.features.fractions import Fractions

    store, comps = filled
    featurize_store(store, "fractions", progress=False)
    monkeypatch.setattr(Fractions, "version", "2")
    assert featurize_store(store, "fractions", progress=False).written == len(comps)
    assert store.query("SELECT count(DISTINCT version) AS v FROM features")["v"][0] == 2


def test_where_and_bad_where(filled):
    store, _ = filled
    r = featurize_store(store, "magpie", where="c.n_elements >= 3", progress=False)
    assert r.written == 2  # LiCo2O4, Ba2YCu3O7
    with pytest.raises(ValueError, match="not a valid condition"):
        validate_store(store, where="no_such_column > 1", progress=False)


def test_failed_batch_leaves_its_rows_out(filled, monkeypatch):
    from matstore.features.magpie import Magpie

    store, _ = filled
    calls = {"n": 0}
    real = Magpie.transform

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(self, batch)

    monkeypatch.setattr(Magpie, "transform", flaky)
    with pytest.raises(RuntimeError):
        featurize_store(store, "magpie", batch_size=4, progress=False)
    assert store.query("SELECT count(*) AS n FROM features")["n"][0] == 4  # first batch only
    monkeypatch.setattr(Magpie, "transform", real)
    assert featurize_store(store, "magpie", progress=False).written == len(FORMULAS) - 4


def test_validate_and_view(filled):
    store, comps = filled
    r = validate_store(store, progress=False)
    assert r.written == len(comps) and r.not_encodable == 1  # Og: smact has no data
    v = store.query("SELECT formula, smact_valid, charge_neutral FROM composition_validity")
    flags = dict(zip(v["formula"], v["smact_valid"]))
    f = {x: parse(x).formula for x in ("NaCl", "LiCo2O4", "CuZn", "Og2O")}
    assert flags[f["NaCl"]] is True and flags[f["LiCo2O4"]] is False and flags[f["CuZn"]] is True
    assert flags[f["Og2O"]] is None
    assert validate_store(store, progress=False).written == 0


def test_cli_featurize_and_validate(filled):
    from matstore.cli import main

    store, comps = filled
    runner = CliRunner()
    res = runner.invoke(main, ["featurize", "--db", store.path, "--featurizer", "magpie", "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["validate", "--db", store.path, "--no-progress"])
    assert res.exit_code == 0 and "10 rows written" in res.output.replace(",", "")
    res = runner.invoke(main, ["validate", "--db", store.path, "--where", "bogus = 1"])
    assert res.exit_code == 1 and "not a valid condition" in res.output
    assert "Traceback" not in res.output
