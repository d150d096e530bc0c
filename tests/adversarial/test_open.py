"""Issue 22, findings 1 and 3 (and 8's `.tmp` and FIFO): opening a store is a trust boundary.

Every connection is opened by matstore.connection.open_duckdb with DuckDB's guards as
configuration, and the file's catalogue is checked before anything of it is read. Each test
builds the hostile file of the issue from a store of real rows.
"""

from __future__ import annotations

import ast
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from matstore.cli import main
from matstore.store import Store, StoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import load_compositions, mp_formulas  # noqa: E402
from _store_data import new_store

PACKAGE = Path(__file__).resolve().parents[2] / "matstore"


@pytest.fixture(scope="module")
def template(tmp_path_factory, read_formulas) -> Path:
    d = tmp_path_factory.mktemp("open")
    store = new_store(d / "t.duckdb")
    formulas, values = mp_formulas(read_formulas, 200)
    load_compositions(store, formulas, "mp", values)
    return Path(store.path)


def _copy(template: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, dst)
    return dst


def _tamper(path: Path, *sql: str) -> None:
    con = duckdb.connect(str(path))   # the attacker's own DuckDB, not matstore
    try:
        for s in sql:
            con.execute(s)
    finally:
        con.close()


def _run(*args):
    r = CliRunner().invoke(main, list(args), catch_exceptions=True)
    return r


def _one_line_refusal(r) -> str:
    assert r.exit_code == 1, (r.exit_code, r.output, r.exception)
    assert not isinstance(r.exception, (AssertionError, TypeError, KeyError)) or isinstance(r.exception, SystemExit)
    text = r.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def test_no_module_calls_duckdb_connect_outside_connection_py():
    """One way to open a connection: every duckdb.connect of the package is in connection.py."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "connection.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "connect" and \
                    isinstance(node.value, ast.Name) and node.value.id == "duckdb":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "duckdb" and \
                    any(a.name == "connect" for a in node.names):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} (from duckdb import connect)")
    assert found == []


def test_schema_migrations_view_over_a_file_is_refused_before_it_is_read(template, tmp_path):
    """Finding 3: `schema_migrations` as a view over read_text printed that file in an error."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LINE\n")
    db = _copy(template, tmp_path / "s" / "recv.duckdb")
    _tamper(db, "DROP TABLE schema_migrations",
            f"CREATE VIEW schema_migrations AS SELECT content::INTEGER AS version, 'x' AS name, "
            f"now() AS applied_at FROM read_text('{secret}')")
    for args in (["info", "--db", str(db)], ["query", "--db", str(db), "SELECT 1"]):
        text = _one_line_refusal(_run(*args))
        assert "schema_migrations is a view" in text and "TOP-SECRET" not in text
    with pytest.raises(StoreError, match="schema_migrations is a view"):
        Store(db).connect(write=True).__enter__()


def test_a_table_replaced_by_a_view_over_a_file_reader_is_refused(template, tmp_path):
    db = _copy(template, tmp_path / "s" / "recv.duckdb")
    _tamper(db, "DROP TABLE rejects",
            "CREATE VIEW rejects AS SELECT 1::INTEGER AS ingest_id, content AS row_ref, '' AS raw, "
            "'' AS reason FROM read_text('/etc/hostname')")
    text = _one_line_refusal(_run("query", "--db", str(db), "SELECT count(*) FROM compositions"))
    assert "rejects is a view" in text


def test_export_column_name_payload_runs_nothing(template, tmp_path):
    """Finding 1: a `rejects` column named with SQL made `export parquet` write any file."""
    target = tmp_path / "pwned.txt"
    db = _copy(template, tmp_path / "s" / "recv.duckdb")
    col = (f'a" := 1)))) FROM range(1); COPY (SELECT \'owned\' AS l) TO \'{target}\' '
           f"(HEADER false, QUOTE ''); SELECT 0, 0 --")
    _tamper(db, f'ALTER TABLE rejects RENAME COLUMN reason TO "{col.replace(chr(34), chr(34) * 2)}"')
    r = _run("export", "parquet", str(tmp_path / "out"), "--db", str(db))
    text = _one_line_refusal(r)
    assert "table rejects is not the one matstore's migrations build" in text
    assert not target.exists() and not (tmp_path / "out").exists()


def test_a_sqlite_file_named_duckdb_installs_no_extension(tmp_path, monkeypatch):
    """Finding 3: opening a SQLite file made DuckDB try to download sqlite_scanner on connect."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    db = tmp_path / "x.duckdb"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    for args in (["info", "--db", str(db)], ["query", "--db", str(db), "SELECT 1"],
                 ["validate", "--db", str(db)]):
        text = _one_line_refusal(_run(*args))
        assert "cannot open store" in text
    assert list(home.iterdir()) == []


def test_read_only_query_cannot_write_duckdbs_temp_folder(template, tmp_path):
    """Finding 8: DuckDB's temp folder `<store>.tmp` was an allowed path of a guarded connection."""
    db = _copy(template, tmp_path / "s" / "q.duckdb")
    Path(str(db) + ".tmp").mkdir()
    r = _run("query", "--db", str(db), f"COPY (SELECT 1 AS x) TO '{db}.tmp/x.csv'")
    _one_line_refusal(r)
    assert list(Path(str(db) + ".tmp").iterdir()) == []


def test_db_pointing_at_a_fifo_is_refused_not_hung(tmp_path):
    fifo = tmp_path / "f.duckdb"
    os.mkfifo(fifo)
    text = _one_line_refusal(_run("info", "--db", str(fifo)))
    assert "not a regular file" in text


def test_file_readers_in_user_sql_are_refused_on_every_connection(template, tmp_path):
    """query --write too: the guards are configuration of every connection, not a per-command SET."""
    db = _copy(template, tmp_path / "s" / "w.duckdb")
    for args in (["query", "--db", str(db), "SELECT * FROM read_text('/etc/hostname')"],
                 ["query", "--write", "--db", str(db), "CREATE TABLE x AS SELECT * FROM read_text('/etc/hostname')"],
                 ["query", "--db", str(db), "SET enable_external_access = true"]):
        _one_line_refusal(_run(*args))


def test_control_characters_from_a_store_never_reach_the_terminal(template, tmp_path):
    """Finding 8: ESC sequences in a received store's ingest URIs and names reached the terminal."""
    db = _copy(template, tmp_path / "s" / "esc.duckdb")
    esc = "x\x1b]0;pwned\x07\x1b[2J"
    _tamper(db, f"UPDATE ingests SET uri = '{esc}'",
            f"COMMENT ON TABLE compositions IS '{esc}'")
    for args in (["info", "--db", str(db)], ["query", "--db", str(db), "SELECT uri FROM ingests"],
                 ["query", "--db", str(db), "--records", "SELECT uri AS \"a\x1bb\" FROM ingests"],
                 ["query", "--db", str(db), "SELECT comment FROM duckdb_tables()"]):
        r = _run(*args)
        assert r.exit_code == 0, r.output
        assert "\x1b" not in r.output and "\x07" not in r.output, r.output


def test_a_failed_transaction_reports_its_own_error_not_the_rollback(template, tmp_path):
    """Finding 8: a merge hitting a full disk said "cannot rollback - no transaction is active"."""
    store = Store(_copy(template, tmp_path / "s" / "r.duckdb"))
    with pytest.raises(RuntimeError, match="disk full"):
        with store.transaction() as con:
            con.execute("ROLLBACK")          # DuckDB ended the transaction itself
            raise RuntimeError("disk full")


def test_a_utf16_csv_is_named_as_such(tmp_path):
    """Finding 8: a UTF-16 CSV was reported as "no formula column"."""
    from matstore.sources import SourceError, read_table

    f = tmp_path / "data.csv"
    f.write_bytes("formula,band_gap\nFe2O3,2.0\n".encode("utf-16"))
    with pytest.raises(SourceError, match="UTF-16"):
        read_table(f)
