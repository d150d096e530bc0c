"""The predictors that ship in matstore/pretrained/ (scripts/pretrain_predictors.py): each imports
into a fresh store and predicts exactly the numbers its source version gave on real test rows
(kept in MANIFEST.json as ``check``); ``predict --model NAME`` imports it on first use; the
manifest names the data it was trained on by sha256."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from matstore import pretrained
from matstore.cli import main
from matstore.compositions import CompositionBatch
from matstore.registry import load_model
from matstore.store import Store
from _runner_helpers import load_compositions
from _store_data import new_store

# the attention predictors this branch ships (scripts/pretrain_predictors.py defaults)
ATTENTION = ["oqmd-attn-fe"]


def _shipped_with_check() -> list[str]:
    return [n for n in pretrained.names() if "check" in pretrained.entry(n)]


def test_the_attention_predictors_ship_with_their_provenance(shared_data):
    for name in ATTENTION:
        e = pretrained.entry(name)
        assert e["kind"] == "attention" and e["model"].startswith(f"{name}@")
        assert pretrained.path(name).stat().st_size == e["bytes"] <= pretrained.MAX_FILE_BYTES   # 8 MiB
        for rel, sha in e["data"].items():              # trained on these very bytes
            assert pretrained.sha256_file(shared_data / rel) == sha
        assert "composition_properties_by_source" in e["selection"] and "oqmd" in e["selection"]
        assert e["metrics"]["test"]["n"] > 1000 and np.isfinite(e["metrics"]["test"]["mae"])
        assert len(e["check"]["formulas"]) == len(e["check"]["predictions"]) > 10


@pytest.mark.parametrize("name", _shipped_with_check())
def test_a_shipped_predictor_imports_and_predicts_its_recorded_numbers(name, tmp_path):
    db = str(tmp_path / "fresh.duckdb")
    new_store(db)
    r = CliRunner().invoke(main, ["models", "import", "--pretrained", name, "--db", db])
    assert r.exit_code == 0, r.output
    m = load_model(Store(db), name)
    check = pretrained.entry(name)["check"]
    got = m.predict(CompositionBatch.from_formulas(check["formulas"]), device="cpu")
    # the manifest keeps the network's raw outputs; band gaps are clamped at 0 when predicted
    from matstore.models.ensemble import clamp

    # to float32 rounding: a float32 network's sums round differently with another torch build or CPU
    # (an attention model's by 1-2 ulp, seen with the locked torch), while a wrong weight, input
    # or decoding moves predictions by orders of magnitude more
    want = clamp(m.property, np.asarray(check["predictions"], np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_predict_imports_a_shipped_attention_model_on_first_use(tmp_path, read_formulas):
    name = ATTENTION[0]
    db = str(tmp_path / "user.duckdb")
    store = new_store(db)
    formulas = read_formulas("oqmd/bandgap_val.csv")["formula"].to_list()[:200]   # real compositions
    load_compositions(store, formulas, "mp")
    r = CliRunner().invoke(main, ["predict", "--model", name, "--db", db, "--quiet"])
    assert r.exit_code == 0, r.output
    rows = store.query("SELECT c.formula, p.value FROM predictions p JOIN compositions c USING (composition_id) "
                       "ORDER BY c.formula")
    assert rows.height > 150
    want = load_model(store, name).predict(CompositionBatch.from_formulas(rows["formula"].to_list()))
    assert np.array_equal(rows["value"].to_numpy(), want)
    # formation energies of real compositions: mostly in the physical range, not a constant
    v = rows["value"].to_numpy()
    assert np.isfinite(v).all() and v.std() > 0.2 and (np.abs(v) < 5).mean() > 0.99


def test_a_store_that_imported_the_previous_shipped_version_keeps_it(tmp_path):
    """Issue 30: a retrained shipped model is a new version. A store that imported the previous
    release's file (tests/data/pretrained_previous: that very file) keeps that version and its
    predictions; `ensure` says a newer one ships instead of replacing it; importing the shipped
    name adds the new weights as version 2 beside it."""
    import warnings
    from pathlib import Path

    from matstore.models.ensemble import clamp
    from matstore.registry import import_models

    name = "oqmd-attn-fe"
    old_file = Path(__file__).parent / "data" / "pretrained_previous" / f"{name}@1.parquet"
    e = pretrained.entry(name)
    prev = e["previous"][0]
    assert pretrained.sha256_file(old_file) == prev["sha256"] != e["sha256"]
    store = new_store(tmp_path / "old.duckdb")
    import_models(store, old_file)
    old = load_model(store, name)
    assert old.version == 1 and old.record["weights_sha256"] in prev["weights_sha256"]
    with pytest.warns(pretrained.OlderPretrainedWarning, match="earlier shipped version"):
        assert pretrained.ensure(store, name) is False
    assert load_model(store, name).version == 1          # the store's own version still answers

    def check(model, chk):
        got = model.predict(CompositionBatch.from_formulas(chk["formulas"]), device="cpu")
        np.testing.assert_allclose(got, clamp(model.property, np.asarray(chk["predictions"])),
                                   rtol=1e-5, atol=1e-6)

    check(old, prev["check"])
    pretrained.import_pretrained(store, name)
    new = load_model(store, name)
    assert new.version == 2 and new.record["weights_sha256"] in e["weights_sha256"]
    check(new, e["check"])
    check(load_model(store, f"{name}@1"), prev["check"])  # unchanged beside it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pretrained.ensure(store, name) is False   # this release's weights: nothing to say
