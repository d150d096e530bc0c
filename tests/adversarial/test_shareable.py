"""Issue 22, finding 6: a store stays shareable after a shipped import; an import is one
transaction."""

from __future__ import annotations

import pytest

from matstore import pretrained
from matstore.merge import merge
from _store_data import new_store


def test_a_store_with_a_shipped_generator_merges(tmp_path):
    """The leave-out set's compositions travel with it (4394 rows pointed at missing compositions)."""
    a = new_store(tmp_path / "a.duckdb")
    pretrained.import_pretrained(a, "transformer-mp")
    dangling = a.query("SELECT count(*) FROM composition_sets s ANTI JOIN compositions c "
                       "USING (composition_id)")[0, 0]
    assert dangling == 0
    n_set = a.query("SELECT count(*) FROM composition_sets")[0, 0]
    assert n_set > 0
    b = new_store(tmp_path / "b.duckdb")
    res = merge(b, a.path)
    assert res.total_added > 0
    assert b.query("SELECT count(*) FROM composition_sets")[0, 0] == n_set


def test_a_forged_leave_out_entry_imports_nothing(tmp_path, monkeypatch):
    """A forged leave-out entry failed after the model version was committed (half import)."""
    store = new_store(tmp_path / "s.duckdb")
    real = pretrained.entry

    def forged(name):
        e = dict(real(name))
        e["leave_out"] = {**e["leave_out"], "n": e["leave_out"]["n"] + 1}
        return e

    monkeypatch.setattr(pretrained, "entry", forged)
    with pytest.raises(pretrained.PretrainedError, match="leave-out"):
        pretrained.import_pretrained(store, "transformer-mp")
    assert store.query("SELECT count(*) FROM model_versions")[0, 0] == 0
    assert store.query("SELECT count(*) FROM compositions")[0, 0] == 0
