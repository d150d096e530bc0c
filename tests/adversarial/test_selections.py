"""Issue 22, finding 4 (and issue 23 point 3): a selection yields composition ids, nothing else.

`--where "false) UNION ALL SELECT <MgO id>, ['Na','Cl'], [1,2] WHERE (true"` stored MgO as not
charge-neutral computed from NaCl2, and `predict --where "true) OR (true"` added duplicates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from matstore.cli import main
from matstore.query import QueryError
from matstore.selection import condition_sql, query_sql, selection_ids, where_ids
from matstore.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import copy_store, load_compositions, mp_formulas  # noqa: E402
from _store_data import new_store

SELECTION_MODULES = ("selection.py",)


@pytest.fixture(scope="module")
def study_template(tmp_path_factory, read_formulas) -> Path:
    """150 real MP compositions plus MgO and NaCl (made once; tests get copies)."""
    store = new_store(tmp_path_factory.mktemp("study") / "s.duckdb")
    formulas, values = mp_formulas(read_formulas, 150)
    load_compositions(store, [*formulas, "MgO", "NaCl"], "mp", [*values, -3.0, -2.0])
    return Path(store.path)


@pytest.fixture
def study(study_template, tmp_path) -> Store:
    return copy_store(study_template, tmp_path / "s.duckdb")


def _id(store: Store, formula: str) -> int:
    return store.query("SELECT composition_id FROM compositions WHERE formula = ?", [formula])[0, 0]


def test_where_union_escape_cannot_forge_a_composition(study):
    mgo = _id(study, "MgO")
    payload = f"false) UNION ALL SELECT {mgo}, ['Na','Cl'], [1,2] WHERE (true"
    r = CliRunner().invoke(main, ["validate", "--db", study.path, "--where", payload])
    assert r.exit_code == 1 and "one SQL condition" in r.output, r.output
    assert study.query("SELECT count(*) FROM validity")[0, 0] == 0
    # and were it accepted, the ids are re-read: MgO is checked as MgO
    r = CliRunner().invoke(main, ["validate", "--db", study.path, "--where",
                                  f"c.composition_id = {mgo}"])
    assert r.exit_code == 0, r.output
    row = study.query("SELECT charge_neutral FROM validity WHERE composition_id = ?", [mgo])
    assert row.height == 1 and row[0, 0] is True


def test_where_or_true_selects_each_composition_once(study):
    n = study.query("SELECT count(*) FROM compositions")[0, 0]
    ids = where_ids(study, "true) OR (true")
    assert len(ids) == n == len(set(ids.tolist()))


def test_orphan_ids_are_dropped_and_every_option_speaks_one_grammar(study):
    n = study.query("SELECT count(*) FROM compositions")[0, 0]
    assert list(selection_ids(study, "SELECT 42 AS composition_id")) == []
    for bad in ("true; DELETE FROM compositions", "false) UNION ALL SELECT 1 WHERE (true",
                "true) GROUP BY ALL HAVING (true"):
        with pytest.raises(QueryError, match="--where"):
            condition_sql(bad)
    for option in ("train --on", "al start --base", "al start --candidates-from", "--pool"):
        with pytest.raises(QueryError, match=f"^{option} .*single SQL query"):
            query_sql("SELECT composition_id FROM compositions; DROP TABLE compositions", option)
    assert study.query("SELECT count(*) FROM compositions")[0, 0] == n


def test_dollar_inside_a_string_literal_is_one_line(study):
    """Finding 8: `$a` inside a string literal was a raw traceback."""
    r = CliRunner().invoke(main, ["featurize", "--db", study.path, "magpie", "--where", "c.formula = '$a'"])
    assert r.exit_code in (0, 1) and r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert "Traceback" not in r.output


def test_no_write_connection_is_opened_to_check_a_selection(study, monkeypatch):
    """Issue 23 point 3: checking and evaluating a selection uses read-only connections only."""
    opened = []
    real = Store.connect

    def spy(self, write=False, *a, **k):
        opened.append(write)
        return real(self, write, *a, **k)

    monkeypatch.setattr(Store, "connect", spy)
    where_ids(study, "c.n_elements >= 2")
    selection_ids(study, "SELECT composition_id FROM known")
    assert opened and not any(opened)


@pytest.mark.slow
def test_predict_where_escapes_add_no_duplicate_or_forged_predictions(study):
    """Finding 4 with predict: `true) OR (true` added 1,994 duplicates; a UNION forged an MgO
    prediction computed from U and an orphan prediction for id 42."""
    mgo = _id(study, "MgO")
    forged = f"false) UNION ALL SELECT {mgo}, ['U'], [1] UNION ALL SELECT 42, ['Na'], [1] WHERE (true"
    r = CliRunner().invoke(main, ["predict", "--db", study.path, "--model", "oqmd-attn-fe",
                                  "--where", forged, "--no-progress"])
    assert r.exit_code == 1 and "one SQL condition" in r.output, r.output
    r = CliRunner().invoke(main, ["predict", "--db", study.path, "--model", "oqmd-attn-fe",
                                  "--where", "true) OR (true", "--no-progress"])
    assert r.exit_code == 0, r.output
    n, distinct, orphans = study.query(
        "SELECT count(*), count(DISTINCT composition_id), "
        "count(*) FILTER (WHERE composition_id NOT IN (SELECT composition_id FROM compositions)) "
        "FROM predictions").row(0)
    assert n == distinct == study.query("SELECT count(*) FROM compositions")[0, 0] and orphans == 0


def test_a_structure_condition_cannot_escape_its_parentheses(study):
    """relax --where is a condition on structures (alias s): the same whole-statement check."""
    from matstore.selection import structure_ids

    for payload in ("false) UNION ALL SELECT 42 WHERE (true", "true) GROUP BY s.structure_id HAVING (true"):
        with pytest.raises(QueryError, match="condition on structures"):
            condition_sql(payload, "relax --where", table="structures")
    assert structure_ids(study, "s.n_sites > 0", "relax --where") == []   # no structures stored
    with pytest.raises(QueryError, match="relax --where"):
        structure_ids(study, "no_such_column > 1", "relax --where")
