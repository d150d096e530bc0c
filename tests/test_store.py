import os
import shutil

import duckdb
import pytest

from matstore import migrations
from matstore.store import Store, StoreError, append, append_new, default_path


def test_init_applies_every_migration_in_order(store):
    rows = store.query("SELECT version, name FROM schema_migrations ORDER BY version").rows()
    assert [r[0] for r in rows] == [m.version for m in migrations.known_migrations()]
    assert rows[0][1] == "initial"


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
