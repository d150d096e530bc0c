"""Store-format stability: stores written by earlier releases of matstore (tests/data/, made by
scripts/make_old_store.py, one file per schema version) open with the DuckDB this matstore runs on,
and the package's migrations bring them forward without losing a row or a value.

Nothing here names the newest schema version: it is whatever migrations.known_migrations() lists,
so a new migration is checked against every old store as soon as it is added. A migration that
reshapes old data on purpose (renames a column, rewrites values) must say so here, with the mapping.
"""

from __future__ import annotations

from collections import Counter

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from matstore import migrations
from matstore.merge import merge
from matstore.store import Store, StoreError

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("store_schema*.duckdb.gz"))


def test_there_is_an_old_store_to_test():
    assert FIXTURES, f"no store_schema*.duckdb.gz in {DATA} (scripts/make_old_store.py writes one)"


def _manifest(gz: Path) -> dict:
    return json.loads(gz.with_suffix("").with_suffix(".json").read_text())


def _unpack(gz: Path, to: Path) -> Path:
    with gzip.open(gz, "rb") as src, open(to, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return to


def _columns(con) -> dict[str, list[str]]:
    rows = con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                       "WHERE database_name = current_database() AND schema_name = 'main' "
                       "AND table_name IN (SELECT table_name FROM duckdb_tables() "
                       "  WHERE database_name = current_database() AND schema_name = 'main') "
                       "ORDER BY table_name, column_index").fetchall()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def _fingerprint(con, table: str, columns: list[str]) -> Counter:
    """The multiset of row hashes over these columns: every old row and value must still be there
    after the migrations (in one DuckDB process); a migration may add rows (e.g. seed a source)."""
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    return Counter(h for (h,) in con.execute(f'SELECT hash({cols}) FROM "{table}"').fetchall())


@pytest.fixture(params=FIXTURES, ids=lambda p: p.name.split(".")[0])
def old(request, tmp_path) -> tuple[Path, dict]:
    gz = request.param
    return _unpack(gz, tmp_path / "old.duckdb"), _manifest(gz)


@pytest.mark.parametrize("gz", FIXTURES, ids=lambda p: p.name.split(".")[0])
def test_fixture_is_small_and_what_its_manifest_says(gz, tmp_path):
    assert gz.stat().st_size < 1 << 20
    m = _manifest(gz)
    con = duckdb.connect(str(_unpack(gz, tmp_path / "old.duckdb")), read_only=True)
    try:
        assert migrations.current_version(con) == m["schema_version"]
        assert [f"{v:04d}_{n}" for v, n in migrations.applied(con)] == m["migrations"]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in _columns(con)}
    finally:
        con.close()
    assert counts == m["tables"]
    # a real study, not an empty schema: data, a model, a run, its samples, predictions, hulls
    for t in ("compositions", "properties", "model_versions", "runs", "generated", "predictions",
              "stability"):
        assert counts[t] > 0, t


def test_migrations_bring_an_old_store_forward_losing_nothing(old):
    path, m = old
    known = migrations.known_migrations()
    assert m["schema_version"] <= len(known)
    con = duckdb.connect(str(path), read_only=True)   # the locked DuckDB reads the old file as is
    try:
        before_cols = _columns(con)
        before = {t: _fingerprint(con, t, cols) for t, cols in before_cols.items() if t != "schema_migrations"}
    finally:
        con.close()

    if m["schema_version"] < len(known):   # read-only use of an old store says how to upgrade it
        with pytest.raises(StoreError, match="older than this matstore"):
            Store(path, read_only=True).query("SELECT 1")

    store = Store.init(path)   # the upgrade path a user takes (`matstore init FILE`, any write)
    assert store.version() == known[-1].version == migrations.latest_version()   # numbers may skip

    con = duckdb.connect(str(path), read_only=True)
    try:
        assert migrations.applied(con) == [(mg.version, mg.name) for mg in known]
        after_cols = _columns(con)
        for t, cols in before_cols.items():
            assert t in after_cols, f"table {t} of schema {m['schema_version']} is gone"
            assert set(cols) <= set(after_cols[t]), (t, set(cols) - set(after_cols[t]))
        after = {t: _fingerprint(con, t, before_cols[t]) for t in before}
    finally:
        con.close()
    for t in before:
        lost = before[t] - after[t]
        assert not lost, f"table {t}: {sum(lost.values())} rows of the old store changed or are gone"

    # the package's views work on the upgraded data
    cand = store.query("SELECT count(*) AS n, count(pred_formation_energy_per_atom) AS p FROM candidates")
    assert cand["n"][0] > 0 and cand["p"][0] > 0
    stats = store.query("SELECT n_unique FROM generation_stats")
    distinct = store.query("SELECT count(DISTINCT composition_id) AS n FROM generated")["n"][0]
    assert stats.height == 1 and stats["n_unique"][0] == distinct > 0
    # and it takes new work beside the old rows
    with store.transaction() as con:
        con.execute("INSERT INTO runs (run_id, kind, status, started_at) "
                    "VALUES ((SELECT max(run_id) + 1 FROM runs), 'generate', 'done', now())")
    assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == m["tables"]["runs"] + 1


def test_merge_takes_an_old_store_upgrading_only_a_copy(old, tmp_path):
    path, m = old
    mine = Store.init(tmp_path / "mine.duckdb")
    untouched = path.read_bytes()
    r = merge(mine, path)
    assert r.other_schema_version == m["schema_version"]
    assert r.upgraded == (m["schema_version"] < migrations.latest_version())
    assert path.read_bytes() == untouched   # the collaborator's file is read, never upgraded
    added = dict(r.added.select("table", "rows_added").iter_rows())
    for t in ("compositions", "materials", "properties", "generated", "predictions"):
        assert added[t] == m["tables"][t] > 0, (t, added[t])
    n = mine.query("SELECT count(*) AS n FROM compositions")["n"][0]
    assert n == m["tables"]["compositions"]
