"""Issue 10, findings 2, 3 and 10: user SQL (`--where`, `train --on`, `query`) and views stored in
a received file, with the payloads of the issue, through the CLI and through Python.

2: `--where`/`--on` are one expression / one SELECT, evaluated on a guarded read-only connection.
3: read-only is read-only: no COPY/EXPORT/ATTACH/read_csv/INSTALL from user SQL (even --write).
10: every read connection answers with the package's views and DuckDB's built-in functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from matstore.cli import main
from matstore.query import QueryError, run_query
from matstore.store import Store

from _runner_helpers import copy_store, small_study

# finding 2: closes the wrapper's WHERE, deletes, and reopens so the rest of the wrapper parses
WHERE_PAYLOAD = "true) c WHERE false; DELETE FROM properties; SELECT 1 FROM (SELECT 1 WHERE (true"
# the same shape for train --on, whose selection is wrapped as FROM (SELECT DISTINCT ... FROM (sel) s) q
ON_DELETE = ("SELECT composition_id FROM compositions) s) q; DELETE FROM properties; "
             "SELECT * FROM ((SELECT 1 AS composition_id")
ON_COPY = ("SELECT composition_id FROM compositions) s) q; COPY (SELECT 1) TO '{store}'; "
           "SELECT * FROM ((SELECT 1 AS composition_id")

TABLES = ("properties", "materials", "compositions", "features", "validity", "predictions",
          "model_versions", "runs", "generated")


@pytest.fixture(scope="module")
def template(tmp_path_factory, read_formulas) -> Path:
    """A small real study: MP formulas with formation energies, an RF predictor, generated
    candidates (some novel), validity and predictions. Copied for every test that attacks it."""
    return small_study(tmp_path_factory, read_formulas, "adv_sql")


@pytest.fixture
def study(template, tmp_path) -> Store:
    """A private copy of the template, named S.duckdb as in the issue."""
    return copy_store(template, tmp_path / "S.duckdb")


def _counts(path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in TABLES}
    finally:
        con.close()


def _fingerprint(path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (Path(path), Path(str(path) + ".wal")) if p.exists()}


def _files(folder: Path) -> set[str]:
    """Files under folder, less the store's own lock/queue/WAL files (matstore's locking)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if not p.name.endswith((".duckdb.lock", ".duckdb.queue", ".duckdb.wal"))}


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- finding 2: --where / --on -------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["validate", "--no-progress"],
    ["featurize", "--featurizer", "magpie", "--no-progress"],
    ["predict", "--model", "rf-fe", "--no-progress"],
])
def test_where_payload_is_refused_by_the_cli_and_deletes_nothing(study, command):
    before = _counts(study.path)
    assert before["properties"] > 0
    r = _cli(*command, "--db", study.path, "--where", WHERE_PAYLOAD)
    assert r.exit_code == 1, r.output
    assert "--where" in r.output and "Traceback" not in r.output
    assert _counts(study.path) == before


def test_where_payload_is_refused_from_python_and_deletes_nothing(study):
    from matstore.featurize import featurize_store, validate_store
    from matstore.predict import pending

    before = _counts(study.path)
    with pytest.raises(QueryError, match="--where"):
        validate_store(study, where=WHERE_PAYLOAD, progress=False)
    with pytest.raises(QueryError, match="--where"):
        featurize_store(study, "fractions", where=WHERE_PAYLOAD, progress=False)
    with pytest.raises(QueryError, match="--where"):
        pending(study, 1, where=WHERE_PAYLOAD)
    assert _counts(study.path) == before


def test_where_cannot_read_other_files_and_a_plain_condition_still_works(study):
    from matstore.featurize import featurize_store

    before = _counts(study.path)
    r = _cli("featurize", "--featurizer", "fractions", "--no-progress", "--db", study.path, "--where",
             "composition_id IN (SELECT length(column0) FROM read_csv('/etc/passwd'))")
    assert r.exit_code == 1 and "--where" in r.output and "root:" not in r.output
    assert _counts(study.path) == before
    want = run_query(study, "SELECT count(*) AS n FROM compositions WHERE n_elements >= 3")["n"][0]
    res = featurize_store(study, "fractions", where="c.n_elements >= 3", progress=False)
    assert want > 0 and res.written == want


@pytest.mark.parametrize("payload", [ON_DELETE, ON_COPY])
def test_train_on_payload_is_refused_and_changes_nothing(study, payload):
    from matstore.training import train

    payload = payload.format(store=study.path)
    before, bytes_before = _counts(study.path), _fingerprint(study.path)
    with pytest.raises(QueryError, match="--on"):
        train(study, "rf-fe", on=payload, config={"n_estimators": 2, "n_jobs": 1}, progress=False)
    assert _fingerprint(study.path) == bytes_before
    r = _cli("train", "--model", "rf-fe", "--no-progress", "--db", study.path, "--on", payload)
    assert r.exit_code == 1 and "--on" in r.output and "Traceback" not in r.output
    assert _counts(study.path) == before


def test_train_on_cannot_read_or_write_files(study, tmp_path):
    from matstore.training import data

    with pytest.raises(ValueError, match="disabled"):
        data.load(study, "SELECT composition_id FROM compositions WHERE composition_id IN "
                         "(SELECT length(column0) FROM read_csv('/etc/passwd'))")
    ds = data.load(study, "SELECT composition_id FROM compositions WHERE n_elements = 2",
                   "formation_energy_per_atom")
    assert len(ds) > 0 and set(tmp_path.iterdir()) == {Path(study.path)}


# --- finding 3: read-only is read-only, and user SQL reaches no other file -----------------------

ESCAPES = [
    "COPY (SELECT 1) TO 'S.duckdb'",                      # relative: the store itself (cwd = its folder)
    "COPY (SELECT 1) TO '{tmp}/S.duckdb'",
    "ATTACH '{other}' AS o (READ_WRITE); DROP TABLE o.materials",
    "ATTACH '{other}' AS o; DELETE FROM o.properties",
    "COPY compositions TO '{tmp}/out.csv'",
    "EXPORT DATABASE '{tmp}/exported'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT content FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SET enable_external_access = true; COPY (SELECT 1) TO '{tmp}/out.csv'",
    "SET lock_configuration = false",
    "RESET enable_external_access",
    "LOAD httpfs",
]


# the fast tier tries every escape in one mode; the other two modes run with the slow tests
@pytest.mark.parametrize("mode", [pytest.param(["--read-only", "query"], marks=pytest.mark.slow), ["query"],
                                  pytest.param(["query", "--write"], marks=pytest.mark.slow)])
@pytest.mark.parametrize("sql", ESCAPES)
def test_user_sql_reaches_no_other_file(study, tmp_path, monkeypatch, sql, mode):
    other = tmp_path / "other" / "other.duckdb"
    other.parent.mkdir()
    shutil.copy(study.path, other)
    monkeypatch.chdir(tmp_path)
    sql = sql.format(tmp=tmp_path, other=other)
    before, other_before = _counts(study.path), _fingerprint(other)
    bytes_before, files_before = _fingerprint(study.path), _files(tmp_path)
    r = _cli(*mode, "--db", "S.duckdb", sql)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "root:" not in r.output
    assert _counts(study.path) == before and _fingerprint(other) == other_before
    if "--write" not in mode:  # a writer may refresh the views (its right); a reader never writes
        assert _fingerprint(study.path) == bytes_before
    assert _files(tmp_path) == files_before
    # the same from Python
    with pytest.raises((duckdb.Error, QueryError)):
        run_query(Store(study.path, read_only="--read-only" in mode), sql, write="--write" in mode)
    assert _counts(study.path) == before and _fingerprint(other) == other_before
    assert _files(tmp_path) == files_before


@pytest.mark.slow
def test_install_creates_nothing_in_home(study, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    for args in (["--read-only", "query"], ["query"], ["query", "--write"]):
        r = subprocess.run([sys.executable, "-m", "matstore.cli", *args, "--db", study.path,
                            "INSTALL httpfs"], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert list(home.iterdir()) == []


def test_read_only_flag_lasts_one_command_only(study):
    r = _cli("--read-only", "query", "--db", study.path, "SELECT count(*) FROM compositions")
    assert r.exit_code == 0, r.output
    assert os.environ.get("MATSTORE_READ_ONLY") in (None, "", "0")
    assert not Store(study.path).read_only
    r = _cli("--read-only", "query", "--write", "--db", study.path, "DELETE FROM generated")
    assert r.exit_code == 1 and "read-only" in r.output
    assert _cli("query", "--write", "--db", study.path, "CREATE TABLE mine AS SELECT 1 AS x").exit_code == 0
    assert run_query(study, "SELECT x FROM mine")["x"].to_list() == [1]


# --- finding 10: a received file's views and macros are not ours ---------------------------------

TAMPER = [
    "CREATE OR REPLACE VIEW screen_stable_novel AS "
    "SELECT content AS formula, 1 AS composition_id FROM read_text('/etc/hostname')",
    "CREATE OR REPLACE VIEW known AS SELECT composition_id, formula, n_elements, ['x'] AS sources, "
    "1 AS n_entries FROM compositions",
    "CREATE MACRO round(a, b) AS 999",
    "CREATE OR REPLACE VIEW screen_evil AS SELECT content AS formula FROM read_text('/etc/passwd')",
]
NOVELTY = "SELECT count(*) FILTER (WHERE novel) AS novel, count(*) AS n FROM candidates"


def test_tampered_views_and_macros_in_the_file_are_not_used(study):
    from matstore.report import ReportError, run_screen

    screen_before = _cli("screen", "stable_novel", "--db", study.path, "--csv")
    novelty_before = run_query(study, NOVELTY).row(0)
    novelty_cli_before = _cli("query", "--db", study.path, "--csv", NOVELTY).output
    stats_before = run_query(study, "SELECT * FROM generation_stats")
    assert screen_before.exit_code == 0 and len(screen_before.output.splitlines()) > 2
    assert 0 < novelty_before[0] < novelty_before[1]
    con = duckdb.connect(study.path)
    for sql in TAMPER:
        con.execute(sql)
    con.close()
    # plain DuckDB now gives the tampered answers...
    con = duckdb.connect(study.path, read_only=True)
    assert con.execute(NOVELTY).fetchall()[0][0] == 0
    con.close()
    # ...matstore gives the package's
    screen_after = _cli("screen", "stable_novel", "--db", study.path, "--csv")
    assert screen_after.exit_code == 0 and screen_after.output == screen_before.output
    assert run_query(study, NOVELTY).row(0) == novelty_before
    assert _cli("query", "--db", study.path, "--csv", NOVELTY).output == novelty_cli_before
    assert run_screen(study, "stable_novel").height == len(screen_before.output.splitlines()) - 1
    assert run_query(study, "SELECT * FROM generation_stats").equals(stats_before)
    assert run_query(study, "SELECT round(2.4, 0) AS r")["r"][0] == 2
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if hostname:
        assert hostname not in screen_after.output
    # a screen only the file defines is not run by `matstore screen`
    r = _cli("screen", "evil", "--db", study.path)
    assert r.exit_code == 1 and "no screen 'evil'" in r.output and "root:" not in r.output
    with pytest.raises(ReportError, match="no screen"):
        run_screen(study, "evil")
    # and user SQL that names the file's view directly still cannot read the file it points at
    r = _cli("query", "--db", study.path, "SELECT * FROM screen_evil")
    assert r.exit_code == 1 and "root:" not in r.output


def test_first_write_connection_restores_views_and_drops_shadowing_macros(study):
    novelty_before = run_query(study, NOVELTY).row(0)
    con = duckdb.connect(study.path)
    for sql in TAMPER[1:3] + ["CREATE MACRO mine(x) AS x + 1"]:
        con.execute(sql)
    con.close()
    assert run_query(study, "SELECT round(2.4, 0) AS r, mine(1) AS m", write=True).row(0) == (2, 2)
    con = duckdb.connect(study.path, read_only=True)  # plain DuckDB: the file itself is repaired
    try:
        assert con.execute(NOVELTY).fetchall()[0] == novelty_before
        assert con.execute("SELECT round(2.4, 0)").fetchall()[0][0] == 2
        assert con.execute("SELECT mine(1)").fetchall()[0][0] == 2  # a user's own macro stays
    finally:
        con.close()
