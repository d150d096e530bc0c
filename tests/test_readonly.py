"""A store read without --write (or opened with --read-only) is never changed, byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from matstore.query import run_query
from matstore.store import Store, StoreError
from _store_data import new_store


def _fingerprint(path: str) -> dict:
    """Bytes and mtime of the store and of its WAL (if any)."""
    out = {}
    for p in (Path(path), Path(path + ".wal")):
        if p.exists():
            st = p.stat()
            out[p.name] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def filled(tmp_path) -> Store:
    store = new_store(tmp_path / "ro.duckdb")
    with store.transaction() as con:
        con.execute("INSERT INTO compositions VALUES (1, 'NaCl', ['Na','Cl'], [1,1], 2, 2), "
                    "(2, 'Fe2O3', ['Fe','O'], [2,3], 2, 5)")
        con.execute("INSERT INTO runs (run_id, kind, status, started_at) VALUES (1, 'generate', 'done', now())")
    return store


def _cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matstore.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


WRITES = [
    "CREATE TABLE evil (x INTEGER)",
    "INSERT INTO compositions VALUES (3, 'KCl', ['K','Cl'], [1,1], 2, 2)",
    "UPDATE compositions SET formula = 'X'",
    "DELETE FROM compositions",
    "DROP TABLE compositions",
    "DROP VIEW known",
    "ALTER TABLE compositions ADD COLUMN y INTEGER",
    "CREATE VIEW v AS SELECT 1",
    "CREATE OR REPLACE VIEW known AS SELECT 1 AS x",
    "CREATE MACRO m(x) AS x + 1",
    "CREATE SEQUENCE s",
    "TRUNCATE compositions",
    "INSERT INTO runs (run_id, kind, status, started_at) VALUES (2, 'x', 'done', now())",
    "SELECT 1; DROP TABLE compositions",
    "SELECT 1; INSERT INTO compositions VALUES (3, 'KCl', ['K','Cl'], [1,1], 2, 2); SELECT 2",
    "BEGIN; DELETE FROM compositions; COMMIT",
    "COPY compositions FROM '{csv}'",
    "ATTACH '{db}' AS w (READ_WRITE); INSERT INTO w.compositions SELECT 9, formula, elements, counts, "
    "n_elements, n_atoms FROM compositions LIMIT 1",
    "ATTACH '{db_alias}' AS w2 (READ_WRITE); DELETE FROM w2.compositions",
    "DETACH ro; SELECT 1",
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "SET wal_autocheckpoint = '1KB'; SELECT 1",
    "PRAGMA enable_checkpoint_on_shutdown; SELECT 1",
    "VACUUM",
    "ANALYZE",
    "IMPORT DATABASE '{tmp}'",
    "USE temp; CREATE TABLE x (y INTEGER); SELECT 1",
]


@pytest.mark.parametrize("sql", WRITES)
def test_query_without_write_cannot_change_the_store(filled, tmp_path, sql):
    csv = tmp_path / "rows.csv"
    csv.write_text("composition_id,formula,elements,counts,n_elements,n_atoms\n")
    alias = tmp_path / "alias_dir"
    alias.mkdir(exist_ok=True)
    link = alias / "same.duckdb"
    if not link.exists():
        link.symlink_to(filled.path)
    sql = sql.format(csv=csv, db=filled.path, db_alias=link, tmp=tmp_path)
    before = _fingerprint(filled.path)
    try:
        run_query(filled, sql)
    except (duckdb.Error, StoreError, ValueError):
        pass  # refusing is fine; what matters is that nothing changed
    assert _fingerprint(filled.path) == before
    rows = run_query(filled, "SELECT count(*) AS n, min(formula) AS f FROM compositions").row(0)
    assert rows == (2, "Fe2O3")
    names = set(run_query(filled, "SELECT table_name FROM information_schema.tables")["table_name"])
    assert {"compositions", "known"} <= names and "evil" not in names and "v" not in names


def test_copy_to_is_refused_and_query_parquet_writes_the_result_instead(filled, tmp_path):
    # user SQL cannot write files (issue 10); a result goes to a file through --parquet
    before = _fingerprint(filled.path)
    out = tmp_path / "out.parquet"
    with pytest.raises(duckdb.PermissionException):
        run_query(filled, f"COPY compositions TO '{out}' (FORMAT parquet)")
    assert not out.exists()
    r = _cli("query", "--db", filled.path, "--parquet", str(out), "SELECT * FROM compositions")
    assert r.returncode == 0, r.stderr
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall()[0][0] == 2
    assert _fingerprint(filled.path) == before


def test_cli_query_write_attempt_is_a_clear_error_and_changes_nothing(filled):
    before = _fingerprint(filled.path)
    r = _cli("query", "--db", filled.path, "DELETE FROM compositions")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "read-only" in r.stderr.lower()
    assert _fingerprint(filled.path) == before


@pytest.mark.slow
def test_global_read_only_refuses_writing_commands_and_never_touches_the_file(filled, tmp_path):
    before = _fingerprint(filled.path)
    r = _cli("--read-only", "query", "--write", "--db", filled.path, "DELETE FROM compositions")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "read-only" in r.stderr
    r = _cli("--read-only", "init", filled.path)
    assert r.returncode == 1 and "read-only" in r.stderr and "Traceback" not in r.stderr
    r = _cli("--read-only", "query", "--db", filled.path, "--csv", "SELECT count(*) AS n FROM compositions")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "2"
    r = _cli("--read-only", "info", "--db", filled.path)
    assert r.returncode == 0, r.stderr
    assert _fingerprint(filled.path) == before
    # the environment variable works the same as the flag (for scripts)
    r = _cli("query", "--write", "--db", filled.path, "DELETE FROM compositions",
             env={"MATSTORE_READ_ONLY": "1"})
    assert r.returncode == 1 and "read-only" in r.stderr
    assert _fingerprint(filled.path) == before
    assert not Path(filled.path + ".wal").exists()
    # and a store that does not exist is not created
    missing = tmp_path / "missing.duckdb"
    r = _cli("--read-only", "query", "--db", str(missing), "SELECT 1")
    assert r.returncode == 1 and not missing.exists()


KILLED_WRITER = r"""
import os, sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("INSERT INTO compositions VALUES (7, 'KBr', ['K','Br'], [1,1], 2, 2)")
os._exit(0)  # no close, no checkpoint: the commit lives only in the WAL
"""


def test_read_only_sees_a_killed_writers_wal_without_replaying_it_to_disk(filled):
    subprocess.run([sys.executable, "-c", KILLED_WRITER, filled.path], check=True, timeout=60)
    assert Path(filled.path + ".wal").exists()
    before = _fingerprint(filled.path)
    ro = Store(filled.path, read_only=True)
    assert ro.query("SELECT count(*) AS n FROM compositions")["n"][0] == 3
    with pytest.raises(StoreError, match="read-only"):
        with ro.transaction():
            pass
    assert _fingerprint(filled.path) == before
