"""CLI conventions (issue 15, item 1): help on every command and option, data on stdout in a
readable shape whatever the width, one set of output options, bound -p parameters, DuckDB's
common errors as one line that says what to do, and one name per option."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from rich.console import Console

from matstore import output
from matstore.cli import MatstoreGroup, main
from matstore.query import run_query
from matstore.store import Store

from _runner_helpers import copy_store, small_study
from _store_data import new_store

OUTPUT_FLAGS = {"--table", "--records", "--csv", "--json", "--parquet", "--limit-rows"}


def _commands(group: click.Group, path=()):
    """(path, command) for every command and subcommand, found by walking click's tree: commands
    added later (by anyone) are covered without touching this test."""
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def _cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})})


@pytest.fixture(scope="module")
def template(tmp_path_factory, read_formulas) -> Path:
    """A small real study: MP formulas with formation energies, an RF predictor, a generation run
    (some novel candidates), validity and predictions."""
    return small_study(tmp_path_factory, read_formulas, "cli")


@pytest.fixture
def study(template, tmp_path) -> Store:
    return copy_store(template, tmp_path / "study.duckdb")


# --- help -------------------------------------------------------------------------------------
def test_every_command_and_option_has_help_and_help_exits_0():
    seen = []
    for path, cmd in _commands(main):
        seen.append(" ".join(path))
        res = _cli(*path, "--help", env={"MATSTORE_DB": "/home/me/study.duckdb"})
        assert res.exit_code == 0, (path, res.output)
        assert "error" not in res.output.lower().split("options:")[0], (path, res.output)
        assert res.stderr == "", (path, res.stderr)
        assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
        assert ".//" not in res.output and "/home/me/study.duckdb" not in res.output, res.output
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert (p.help or "").strip(), f"{' '.join(path)} {p.opts[0]} has no help text"
                assert p.opts[0] in res.output, (path, p.opts)
    # the walk reached the nested commands, so a new one cannot hide
    assert {"query", "ingest", "models list", "models show", "export parquet"} <= set(seen)
    assert _cli("--help").exit_code == 0


def test_one_name_per_option_across_commands():
    by_dest: dict[str, set[str]] = {}
    for path, cmd in _commands(main):
        visible = {o for p in cmd.params if isinstance(p, click.Option) and not p.hidden
                   for o in p.opts}
        # a progress bar is switched off with --no-progress everywhere; sizes are --batch-size
        assert not visible & {"--quiet", "--chunk-size"}, (path, visible)
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                by_dest.setdefault(p.name, set()).add(p.opts[0])
        if any(p.name == "fmt" for p in cmd.params):  # prints rows: the whole shared set
            assert OUTPUT_FLAGS <= visible, (path, OUTPUT_FLAGS - visible)
    assert by_dest["no_progress"] == {"--no-progress"} and by_dest["batch_size"] == {"--batch-size"}
    # the old names still parse (hidden), for scripts written against them
    def hidden(name):
        return {o for p in main.commands[name].params if getattr(p, "hidden", False) for o in p.opts}

    assert "--chunk-size" in hidden("predict") and "--quiet" in hidden("ingest")


# --- readable output --------------------------------------------------------------------------
@pytest.mark.parametrize("sql", ["SELECT * FROM generation_stats", "SELECT * FROM candidates LIMIT 3"])
def test_wide_view_piped_prints_every_column_name_in_full(study, sql):
    expected = run_query(study, sql)
    assert expected.height > 0 and len(expected.columns) > 8
    res = _cli("query", "--db", study.path, sql)  # CliRunner: stdout is not a terminal
    assert res.exit_code == 0, res.output
    names = [line.split(" | ")[0].strip() for line in res.stdout.splitlines() if " | " in line]
    assert names[:len(expected.columns)] == expected.columns
    assert "…" not in res.stdout
    # an 80-column terminal gets the same records; a narrow frame stays a table
    buf = io.StringIO()
    output.print_frame(run_query(study, "SELECT * FROM generation_stats"),
                       console=Console(width=80, file=buf, force_terminal=True))
    assert "…" not in buf.getvalue() and "unique_pct" in buf.getvalue()
    forced = _cli("query", "--db", study.path, "--table", sql).stdout  # asked for: wide, uncut
    assert "…" not in forced and all(f" {c} " in forced for c in expected.columns)
    small = _cli("query", "--db", study.path, "SELECT count(*) AS n FROM compositions")
    assert "┃   n ┃" in small.stdout and "RECORD" not in small.stdout


def test_models_list_shows_a_metrics_summary_and_full_json_with_json(study):
    from matstore.registry import list_models

    res = _cli("models", "list", "--db", study.path)
    assert res.exit_code == 0 and len(res.stdout.splitlines()) < 20, res.stdout
    assert "test: mae=" in res.stdout and "…" not in res.stdout.split("metrics")[0]
    full = json.loads(_cli("models", "list", "--db", study.path, "--json").stdout)
    assert json.loads(full[0]["metrics"]) == json.loads(list_models(study)["metrics"][0])


# --- output options on every row-printing command ---------------------------------------------
def _csv(res) -> pl.DataFrame:
    assert res.exit_code == 0, res.output
    return pl.read_csv(io.StringIO(res.stdout))


def _ingested(shared_data, tmp_path, n: int, *extra) -> tuple[str, object]:
    """A store holding the first n rows of MP's formation energies, ingested by the CLI."""
    db = new_store(tmp_path / f"ingested{n}.duckdb").path
    f = tmp_path / f"e_form{n}.csv"
    pl.read_csv(shared_data / "mp" / "e_form.csv").head(n).write_csv(f)
    res = _cli("ingest", "csv", "--db", db, "--file", f, "--prop",
               "formation_energy_per_atom=target:eV/atom", *extra)
    assert res.exit_code == 0, res.output
    return db, res


def test_output_options_round_trip(study, tmp_path, shared_data):
    from matstore.registry import list_models
    from matstore.report import run_screen

    sql = "SELECT formula, n_elements, n_atoms FROM compositions ORDER BY formula"
    assert _csv(_cli("query", "--db", study.path, "--csv", sql)).equals(study.query(sql))
    got = pl.read_json(io.BytesIO(_cli("query", "--db", study.path, "--json", sql).stdout.encode()))
    assert got.equals(study.query(sql))
    pq = tmp_path / "q.parquet"
    res = _cli("query", "--db", study.path, "--parquet", pq, sql)
    assert res.stdout == "" and pl.read_parquet(pq).equals(study.query(sql))
    rec = _cli("query", "--db", study.path, "--records", "--limit-rows", "2", sql).stdout
    assert rec.count("-[ RECORD") == 2 and "formula" in rec
    screen = run_screen(study, "stable_novel").select("formula", "n_elements")
    assert screen.height > 0
    assert _csv(_cli("screen", "stable_novel", "--db", study.path, "--csv")).select(
        "formula", "n_elements").equals(screen)
    models = _csv(_cli("models", "list", "--db", study.path, "--csv"))
    assert models["metrics"].to_list() == list_models(study)["metrics"].to_list()
    info = json.loads(_cli("info", "--db", study.path, "--json").stdout)
    counts = {r["table"]: r["rows"] for r in info["tables"]}
    assert counts["compositions"] == study.query("SELECT count(*) AS n FROM compositions")["n"][0]
    assert info["schema_version"] > 0 and info["ingests"] is not None
    out = tmp_path / "exp"
    exported = _csv(_cli("export", "parquet", out, "--db", study.path, "--csv"))
    rows = dict(exported.select("table", "rows").iter_rows())
    assert rows["compositions"] == counts["compositions"]
    fresh = new_store(tmp_path / "fresh.duckdb")
    other, _ = _ingested(shared_data, tmp_path, 200)

    def rows(store, tables):
        return {t: store.query(f'SELECT count(*) AS n FROM "{t}"')["n"][0] for t in tables}

    before = rows(fresh, ("compositions", "materials", "properties", "ingests"))
    merged = _cli("merge", other, "--db", fresh.path, "--json")
    assert merged.exit_code == 0, merged.output
    # the machine output (not the human line on stderr) says what landed, table by table
    added = pl.read_json(io.BytesIO(merged.stdout.encode()))
    assert added["rows_added"].sum() > 0
    by_table = {r["table"]: r for r in added.iter_rows(named=True)}
    after = rows(fresh, before)
    in_other = rows(Store(other, read_only=True), before)
    for t in before:
        assert by_table[t]["rows_added"] == after[t] - before[t] > 0, (t, by_table[t], before, after)
        assert by_table[t]["rows_in_other"] == in_other[t], (t, by_table[t], in_other)


# --- parameters -------------------------------------------------------------------------------
def test_param_is_bound_never_pasted(study):
    payload = "Fe2O3'; DROP TABLE compositions; --"
    n = study.query("SELECT count(*) AS n FROM compositions")["n"][0]
    res = _cli("query", "--db", study.path, "--write", "--csv",
               "SELECT count(*) AS n FROM compositions WHERE formula = $f", "-p", f"f={payload}")
    assert _csv(res)["n"][0] == 0
    assert study.query("SELECT count(*) AS n FROM compositions")["n"][0] == n
    one = study.query("SELECT formula FROM compositions ORDER BY formula LIMIT 1")["formula"][0]
    res = _cli("query", "--db", study.path, "--csv", "-p", f"f={one}", "-p", "k=3",
               "SELECT formula FROM compositions WHERE formula = $f OR n_elements >= $k ORDER BY formula")
    want = study.query(f"SELECT formula FROM compositions WHERE formula = '{one}' OR n_elements >= 3 "
                       "ORDER BY formula")
    assert _csv(res).equals(want)
    for args, msg in ((["-p", "x=1"], "no $x"), ([], "no value for $f"), (["-p", "oops"], "NAME=VALUE")):
        res = _cli("query", "--db", study.path, "SELECT $f AS v", *args) if args != ["-p", "x=1"] else \
            _cli("query", "--db", study.path, "SELECT $f AS v", "-p", "f=1", *args)
        assert res.exit_code == 1 and msg in res.output and len(res.output.strip().splitlines()) == 1, \
            res.output


def test_where_with_params_for_featurize_validate_predict(study):
    want = study.query("SELECT count(*) AS n FROM compositions c WHERE n_elements >= 3 AND NOT EXISTS "
                       "(SELECT 1 FROM features f WHERE f.composition_id = c.composition_id)")["n"][0]
    assert want > 0
    res = _cli("featurize", "--db", study.path, "--featurizer", "fractions", "--no-progress",
               "--where", "n_elements >= $n", "-p", "n=3")
    assert res.exit_code == 0 and f"for {want:,} pending" in res.output, res.output
    res = _cli("validate", "--db", study.path, "--no-progress", "--oxidation-set", "icsd24",
               "--where", "formula = $f", "-p", "f=x'; DELETE FROM validity; --")
    assert res.exit_code == 0 and "for 0 pending" in res.output, res.output
    res = _cli("predict", "--db", study.path, "--model", "rf-fe", "--device", "cpu", "--no-progress",
               "--batch-size", "50", "--where", "n_elements = $n", "-p", "n=2")
    todo = study.query("SELECT count(*) AS n FROM compositions c WHERE n_elements = 2 AND NOT EXISTS "
                       "(SELECT 1 FROM predictions p WHERE p.composition_id = c.composition_id)")
    assert res.exit_code == 0 and todo["n"][0] == 0, res.output
    res = _cli("featurize", "--db", study.path, "--featurizer", "fractions", "--where", "true",
               "-p", "n=3")
    assert res.exit_code == 1 and "no $n" in res.output


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sql, msg", [
    ("DELETE FROM rejects", "add --write"),
    ("CREATE VIEW v AS SELECT 1", "add --write"),
    ("SELECT * FROM nope", "no table or view named nope"),
    ("SELECT zz FROM compositions", 'no column "zz"'),
])
def test_duckdb_errors_are_one_line_that_says_what_to_do(study, sql, msg):
    res = _cli("query", "--db", study.path, sql)
    assert res.exit_code == 1 and msg in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1 and res.stdout == "", res.output


def test_only_matstores_own_errors_are_one_line():
    """MatstoreError (and DuckDB's errors) become one line; any other exception is a bug and
    reaches the caller with its traceback."""
    from matstore.training.presets import get as get_preset  # a MatstoreError for unknown names

    @click.group(cls=MatstoreGroup)
    def app():
        pass

    @app.command()
    def refused():
        get_preset("nope")

    @app.command()
    def bug():
        np.zeros(2).reshape(3)  # a plain ValueError from inside numpy

    res = CliRunner().invoke(app, ["refused"])
    assert res.exit_code == 1 and res.output.startswith("error: unknown preset 'nope'"), res.output
    assert len(res.output.strip().splitlines()) == 1 and isinstance(res.exception, SystemExit)
    res = CliRunner().invoke(app, ["bug"])
    assert isinstance(res.exception, ValueError) and "error:" not in res.output


# --- ingest progress --------------------------------------------------------------------------
def test_ingest_progress_ends_full_when_curation_drops_rows(shared_data, tmp_path):
    db, res = _ingested(shared_data, tmp_path, 3000, "--matgan-curation")
    assert "3000 seen" in res.stderr and "curated" in res.stderr
    kept = duckdb.connect(db, read_only=True).execute("SELECT count(*) FROM materials").fetchall()[0][0]
    assert 0 < kept < 3000
    assert "3000/3000" in res.stderr and f"{kept}/3000" not in res.stderr, res.stderr
