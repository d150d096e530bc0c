import os
import shutil

import duckdb
import pytest

from matstore import migrations
from matstore.store import Store, StoreError, append, append_new, default_path


def test_init_applies_every_migration_in_order(tmp_path):
    store = Store.init(tmp_path / "init.duckdb")   # init itself (the store fixture is a copy)
    rows = store.query("SELECT version, name FROM schema_migrations ORDER BY version").rows()
    assert [r[0] for r in rows] == [m.version for m in migrations.known_migrations()]
    assert rows[0][1] == "initial"


def _everything(path) -> dict:
    """A store file's whole catalogue and every row of every table (migration times aside)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        q = lambda sql: sorted(con.execute(sql).fetchall(), key=repr)   # noqa: E731
        tables = [r[0] for r in q("SELECT table_name FROM duckdb_tables() WHERE NOT internal")]
        out = {
            "tables": q("SELECT schema_name, table_name, sql, comment FROM duckdb_tables() WHERE NOT internal"),
            "views": q("SELECT schema_name, view_name, sql, comment FROM duckdb_views() WHERE NOT internal"),
            "indexes": q("SELECT table_name, index_name, sql FROM duckdb_indexes()"),
            "sequences": q("SELECT sequence_name, start_value, last_value FROM duckdb_sequences()"),
            "macros": q("SELECT function_name, macro_definition FROM duckdb_functions() WHERE NOT internal"),
            "constraints": q("SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints()"),
            "migrations": q("SELECT version, name FROM schema_migrations"),
        }
        for t in tables:
            if t != "schema_migrations":
                out[t] = q(f'SELECT * FROM "{t}"')
        return out
    finally:
        con.close()


def test_the_store_fixture_is_exactly_what_init_makes(store, tmp_path):
    """new_store (the `store` fixture) copies a file Store.init made: the copy, before and after
    matstore opens it for writing, holds what a fresh Store.init holds, and it is a store of its
    own (writes to it reach neither the template nor another copy)."""
    from _store_data import new_store, template_path

    made = _everything(Store.init(tmp_path / "init.duckdb").path)
    assert made["tables"] and len(made["views"]) >= 20 and made["migrations"]
    assert _everything(store.path) == made
    with store.transaction() as con:   # the first write open prepares it as init's open did
        con.execute("INSERT INTO compositions VALUES (1, 'NaCl', ['Na','Cl'], [1,1], 2, 2)")
    other = new_store(tmp_path / "other.duckdb")
    assert _everything(other.path) == made == _everything(template_path())
    assert store.query("SELECT formula FROM compositions").rows() == [("NaCl",)]
    with store.transaction() as con:
        con.execute("DELETE FROM compositions")
    assert _everything(store.path) == made
    with pytest.raises(FileExistsError):
        new_store(store.path)


def test_views_exist_for_every_sql_file(store):
    from matstore.store import view_definitions

    views = {r[0] for r in store.query(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").rows()}
    assert set(view_definitions()) <= views


def test_older_store_is_upgraded_on_open(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMP)")
    con.close()  # a store at version 0: nothing applied yet
    s = Store(path)
    with pytest.raises(StoreError, match="older"):
        s.query("SELECT 1")  # read-only open refuses and says how to upgrade
    Store.init(path)
    assert s.version() == migrations.latest_version()


def test_newer_schema_is_refused_and_file_unchanged(tmp_path):
    path = tmp_path / "new.duckdb"
    Store.init(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'from_the_future', now())")
    con.close()
    before = path.read_bytes()

    Store(path).forget_prepared()  # as a fresh process would
    for write in (False, True):
        with pytest.raises(migrations.SchemaTooNewError, match="schema version 999"):
            with Store(path).connect(write=write):
                pass
    assert path.read_bytes() == before


def test_default_path_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MATSTORE_DB", str(tmp_path / "env.duckdb"))
    assert default_path() == str(tmp_path / "env.duckdb")
    assert Store().path == str(tmp_path / "env.duckdb")


def test_missing_store_read_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no store at .*matstore init"):
        Store(tmp_path / "missing.duckdb").query("SELECT 1")


def test_read_only_store_refuses_writes(store):
    ro = Store(store.path, read_only=True)
    with pytest.raises(StoreError, match="read-only"):
        with ro.transaction():
            pass


def test_failed_transaction_leaves_store_as_it_was(store):
    import polars as pl

    frame = pl.DataFrame({"ingest_id": [1], "row_ref": ["r1"], "raw": ["x"], "reason": ["test"]})
    with store.transaction() as con:
        append(con, "rejects", frame)
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            append(con, "rejects", frame)
            raise RuntimeError("boom mid-batch")
    assert store.query("SELECT count(*) FROM rejects").item() == 1


def test_append_new_is_idempotent(store):
    import polars as pl

    from matstore.compositions import parse

    comps = [parse(f) for f in ["Fe2O3", "NaCl", "Fe4O6"]]
    df = pl.DataFrame({"composition_id": [c.composition_id for c in comps],
                       "formula": [c.formula for c in comps],
                       "elements": [list(c.elements) for c in comps],
                       "counts": [list(c.counts) for c in comps],
                       "n_elements": [c.n_elements for c in comps],
                       "n_atoms": [c.n_atoms for c in comps]})
    with store.transaction() as con:
        assert append_new(con, "compositions", df, key=["composition_id"]) == 2
        assert append_new(con, "compositions", df, key=["composition_id"]) == 0
    assert sorted(store.query("SELECT formula FROM compositions")["formula"]) == ["Fe2O3", "NaCl"]


def test_first_write_open_remakes_views_that_differ_only_in_comment_or_body(store):
    """_prepare keeps a file's views only when every one is the package's, comment included."""
    from matstore.views import view_definitions, view_question

    con = duckdb.connect(store.path)
    con.execute("COMMENT ON VIEW known IS 'not the question'")
    con.execute("CREATE OR REPLACE VIEW model_bias AS SELECT 1 AS x")
    con.close()
    store.forget_prepared()   # as the next process would
    with store.connect(write=True):
        pass
    con = duckdb.connect(store.path, read_only=True)
    try:
        got = dict(con.execute("SELECT view_name, comment FROM duckdb_views() "
                               "WHERE view_name IN ('known', 'model_bias')").fetchall())
        assert got["known"] == view_question(view_definitions()["known"])
        assert got["known"].startswith("Which compositions are known")
        assert "x" not in [r[0] for r in con.execute("DESCRIBE model_bias").fetchall()]
    finally:
        con.close()
