"""Run every reading command on randomly mutated copies of a real store (used by
test_hostile_stores.py in a subprocess with RLIMIT_DATA = 2 GiB and HOME pointing at an empty
folder).

    python _hostile_stores.py TEMPLATE.duckdb WORKDIR N SEED   -> one JSON line on stdout

Mutations (1-3 per copy, seeded): tables replaced by views over file readers, columns renamed to
SQL (the export payload among them), package views and built-in names redefined over a file
reader, schema_migrations replaced or its rows forged, tables dropped or retyped, defaults added,
hostile object names, huge rows (element lists, formulas, URIs), control characters, bad values.
Extension-calling views cannot be built offline (DuckDB binds a view when it is created, which
needs the extension installed); the SQLite-file case of test_open.py covers autoloading on open.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import sys
from pathlib import Path

import duckdb

CANARY = "CANARY-7f3e-SECRET"
ESC = "\x1b]0;pwned\x07\x1b[2J"
READERS = ["SELECT content AS {col} FROM read_text('{canary}')",
           "SELECT column0 AS {col} FROM read_csv('{canary}', header = false)",
           "SELECT file AS {col} FROM glob('{root}/*')",
           "SELECT content AS {col} FROM read_text('/etc/passwd')"]


def _payloads(root: Path, canary: Path) -> list[str]:
    return [f'a" := 1)))) FROM range(1); COPY (SELECT \'x\' AS l) TO \'{root}/pwned.txt\' '
            f"(HEADER false, QUOTE ''); SELECT 0, 0 --",
            "x\"; DROP TABLE materials; --",
            f"y\" || (SELECT content FROM read_text('{canary}')) || \"",
            "col" + ESC, "über", "a" * 300]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def mutations(con, rng: random.Random, root: Path, canary: Path) -> list:
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()]
    views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
    t = rng.choice(tables)
    reader = rng.choice(READERS)
    cols = [r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [t]).fetchall()]
    c = rng.choice(cols)
    fmt = dict(canary=canary, root=root)
    return [
        ("table->reader view", [f"DROP TABLE {_q(t)}",
                                f"CREATE VIEW {_q(t)} AS " + reader.format(col=_q(c), **fmt)]),
        ("rename column to SQL", [f"ALTER TABLE {_q(t)} RENAME COLUMN {_q(c)} TO "
                                  f"{_q(rng.choice(_payloads(root, canary)))}"]),
        ("package view over a reader", [f"CREATE OR REPLACE VIEW {_q(rng.choice(views or ['known']))} AS "
                                        + reader.format(col="composition_id", **fmt)]),
        ("built-in shadowing macro", [f"CREATE MACRO {rng.choice(['lower', 'round', 'length', 'abs', 'coalesce'])}"
                                      f"(x) AS (SELECT content FROM read_text('{canary}'))"]),
        ("table macro named like a view", [f"CREATE MACRO {rng.choice(views or ['known'])}() AS TABLE "
                                           + reader.format(col="x", **fmt)]),
        ("schema_migrations as a view", ["DROP TABLE schema_migrations",
                                         "CREATE VIEW schema_migrations AS SELECT length(content) AS version, "
                                         f"content AS name, now() AS applied_at FROM read_text('{canary}')"]),
        ("forged migration rows", [rng.choice(["INSERT INTO schema_migrations VALUES (999, 'future', now())",
                                               "UPDATE schema_migrations SET name = 'x' || chr(27) || '[2J' WHERE version = 3",
                                               "DELETE FROM schema_migrations WHERE version > 5"])]),
        ("drop table", [f"DROP TABLE {_q(t)}"]),
        ("retype column", [f"ALTER TABLE {_q(t)} ALTER COLUMN {_q(c)} TYPE VARCHAR"]),
        ("default added", [f"ALTER TABLE {_q(t)} ALTER COLUMN {_q(c)} SET DEFAULT NULL"]),
        ("hostile object names", ["CREATE TABLE \"x\"\"; DROP TABLE materials; --\" (a INTEGER)",
                                  f"CREATE VIEW \"v'); COPY (SELECT 1) TO '{root}/pwned.txt'; --\" AS "
                                  f"SELECT content FROM read_text('{canary}')"]),
        ("huge element list", ["INSERT INTO compositions (composition_id, formula, elements, counts, n_elements, n_atoms) "
                               "SELECT 4242, 'H', list('H'), list(1), {n}, {n} FROM range({n})"
                               .format(n=rng.choice([33, 5000, 200000]))]),
        ("huge formula", ["INSERT INTO compositions (composition_id, formula, elements, counts, n_elements, n_atoms) "
                          f"VALUES (4243, repeat('H', {rng.choice([1001, 2000000])}), ['H'], [1], 1, 1)"]),
        ("huge uri with control characters", [f"UPDATE ingests SET uri = repeat('{ESC}', 50000)"]),
        ("control characters", [f"UPDATE ingests SET source = '{ESC}'",
                                f"COMMENT ON TABLE compositions IS '{ESC}'",
                                f"UPDATE compositions SET formula = formula || '{ESC}' WHERE composition_id IN "
                                f"(SELECT composition_id FROM compositions LIMIT 3)"]),
        ("bad values", [rng.choice(["UPDATE properties SET value = 'nan'::DOUBLE",
                                    "UPDATE compositions SET elements = ['Xx'] WHERE composition_id IN "
                                    "(SELECT composition_id FROM compositions LIMIT 2)",
                                    "UPDATE compositions SET n_atoms = -5",
                                    "UPDATE compositions SET counts = [0] WHERE composition_id IN "
                                    "(SELECT composition_id FROM compositions LIMIT 2)"])]),
        ("user table with SQL columns", [f"CREATE TABLE mine ({_q(rng.choice(_payloads(root, canary)))} INTEGER)"]),
    ]


def commands(db: str, out: Path) -> list[list[str]]:
    return [["info", "--db", db],
            ["query", "--db", db, "SELECT count(*) AS n FROM known"],
            ["screen", "semiconductors", "--db", db],
            ["models", "list", "--db", db],
            ["export", "parquet", str(out), "--db", db]]


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def main(template: str, work: str, n: int, seed: int) -> dict:
    from click.testing import CliRunner

    from matstore.cli import main as cli

    root = Path(work)
    canary = root / "canary.txt"
    canary.write_text(CANARY + "\n")
    rng = random.Random(seed)
    report = {"stores": 0, "mutations": 0, "commands": 0, "ok": 0, "refused": 0, "failures": [],
              "kinds": {}}
    for i in range(n):
        d = root / f"s{i % 4}"   # a few folders, emptied each time
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        db = d / "recv.duckdb"
        shutil.copyfile(template, db)
        con = duckdb.connect(str(db))   # the attacker's own DuckDB, not matstore
        applied = []
        try:
            options = mutations(con, rng, root, canary)
            for name, sql in rng.sample(options, rng.choice([1, 1, 2, 3])):
                try:
                    for s in sql:
                        con.execute(s)
                    applied.append(name)
                except duckdb.Error:
                    pass
        finally:
            con.close()
        if not applied:
            continue
        report["stores"] += 1
        report["mutations"] += len(applied)
        for name in applied:
            report["kinds"][name] = report["kinds"].get(name, 0) + 1
        before = _files(root)
        out = d / "export"
        for args in commands(str(db), out):
            r = CliRunner().invoke(cli, args)
            report["commands"] += 1
            text = r.output.strip()
            problem = None
            if r.exception is not None and not isinstance(r.exception, SystemExit):
                problem = f"exception {type(r.exception).__name__}: {str(r.exception)[:200]}"
            elif r.exit_code not in (0, 1):
                problem = f"exit {r.exit_code}"
            elif r.exit_code == 1 and len(text.splitlines()) != 1:
                problem = f"refusal of {len(text.splitlines())} lines"
            elif CANARY in r.output or "root:x:0:0" in r.output:
                problem = "a file's content reached the output"
            elif "\x1b" in r.output or "\x07" in r.output:
                problem = "a control character reached the output"
            elif r.exit_code == 1 and len(text) > 600:
                problem = f"a refusal of {len(text)} characters"
            if problem:
                report["failures"].append({"mutations": applied, "command": args[0:2], "problem": problem,
                                           "output": text[:300]})
            elif r.exit_code == 0:
                report["ok"] += 1
            else:
                report["refused"] += 1
            shutil.rmtree(out, ignore_errors=True)
        new = sorted(f for f in _files(root) - before
                     if not f.startswith(str(out)) and not f.startswith(str(db) + "."))
        if new or (root / "pwned.txt").exists():
            report["failures"].append({"mutations": applied, "problem": f"files written: {new[:5]}"})
    report["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return report


if __name__ == "__main__":
    limit = 2 << 30
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    template, work, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    os.environ.pop("MATSTORE_DB", None)
    print(json.dumps(main(template, work, n, seed)))
