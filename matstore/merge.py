"""`matstore merge OTHER.duckdb`: import a collaborator's store into this one.

Rules:
- The other file is never touched: it is read once (under a read lock) into a temporary copy
  beside this store; a copy with an older schema is upgraded (migrated) there, a file with a
  newer schema is refused before anything is copied.
- Ids of our own work are small integers and clash between stores, so they are remapped:
  ingests (same source, uri, params, started_at = the same ingest), model versions (same name,
  kind, created_at, weights hash) and runs (same kind, started_at, host, pid). An unmatched row
  gets a fresh id (from the table's sequence where it has one); a model version whose number is
  taken for its name gets the next free numbers. Every ingest_id / model_id / run_id column of
  every table is rewritten through these maps.
- Everything else is keyed by deterministic ids (composition_id, material_id) or by its natural
  key, and only rows whose key is not present yet are added; so merging the same file twice, or
  two stores that share some history, adds nothing twice. Generated samples are taken per whole
  (run, batch), like they were committed.
- The whole merge is one transaction: it lands completely or not at all.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from . import migrations
from .export import base_tables, columns_of
from .store import Store, StoreError
from .errors import MatstoreError

SRC = "_matstore_merge_src"

# Tables whose integer id we remap: (id column, identity columns, sequence or None).
ID_TABLES = {
    "ingests": ("ingest_id", ["source", "uri", "params", "started_at"], None),
    "model_versions": ("model_id", ["name", "kind", "created_at", "weights_sha256"], "model_id_seq"),
    "runs": ("run_id", ["kind", "started_at", "host", "pid"], "run_id_seq"),
}
REMAP = {"ingest_id": "ingests", "model_id": "model_versions", "run_id": "runs"}
# Natural keys of the other tables (after remapping); a table not listed is keyed by all columns.
KEYS = {
    "compositions": ["composition_id"],
    "materials": ["material_id"],
    "properties": ["material_id", "name"],
    "features": ["composition_id", "featurizer", "version"],
    "validity": ["composition_id", "checker_version"],
    "run_batches": ["run_id", "batch_no"],
    "generated": ["run_id", "batch_no"],  # whole batches, as committed
    "predictions": ["composition_id", "model_id", "run_id", "property"],
    "composition_sets": ["set_name", "composition_id", "model_id", "role"],
    "stability": ["composition_id", "model_id", "reference"],
}
# id columns where 0 means "none" (stability.model_id 0: the reference's own energies): kept as 0
ZERO_MEANS_NONE = {("stability", "model_id")}
ORDER = ["ingests", "model_versions", "runs"]  # maps first; then the rest
SKIP = {"schema_migrations"}


class MergeError(MatstoreError, RuntimeError):
    """A merge that cannot be done as asked; the message says why (nothing was changed)."""


@dataclass
class MergeResult:
    other: str
    other_schema_version: int
    upgraded: bool
    added: pl.DataFrame          # table, rows_in_other, rows_added
    id_maps: dict[str, dict[int, int]]

    @property
    def total_added(self) -> int:
        return int(self.added["rows_added"].sum())


def merge(store: Store, other_path: str | Path) -> MergeResult:
    """Merge the store file at other_path into store (see module docstring)."""
    other = Path(other_path)
    if not other.is_file():
        raise MergeError(f"merge: no store file at {other}")
    if other.resolve() == Path(store.path).resolve():
        raise MergeError(f"merge: {other} is this store itself")
    if not store.exists:
        raise MergeError(f"merge: no store at {store.path}; create one with `matstore init {store.path}`")
    tmpdir = Path(tempfile.mkdtemp(prefix=".matstore-merge-", dir=Path(store.path).resolve().parent))
    try:
        copy, version = _snapshot(other, tmpdir)
        upgraded = version < migrations.latest_version()
        if upgraded:  # upgrade only the copy, never the collaborator's file
            with Store(copy, read_only=False).connect(write=True):
                pass
        with store.connect(write=True) as con:
            con.execute(f"ATTACH '{_q(copy)}' AS {SRC} (READ_ONLY)")
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    added, maps = _merge_into(con)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            finally:
                con.execute(f"DETACH {SRC}")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return MergeResult(str(other), version, upgraded, added, maps)


def _snapshot(other: Path, tmpdir: Path) -> tuple[str, int]:
    """Copy other (and its WAL) while holding a read lock on it, so the copy is consistent."""
    reader = Store(other, read_only=True)
    deadline = time.monotonic() + reader.lock_timeout
    try:
        con = reader._open(False, deadline)
    except StoreError as e:
        raise MergeError(f"merge: cannot read {other}: {e}") from e
    try:
        try:
            version = migrations.check_not_newer(con, str(other))
        except duckdb.Error as e:
            raise MergeError(f"merge: {other} is not a matstore store: {e}") from e
        if version == 0:
            raise MergeError(f"merge: {other} is not a matstore store (no schema_migrations table)")
        copy = tmpdir / "other.duckdb"
        shutil.copyfile(other, copy)
        wal = Path(str(other) + ".wal")
        if wal.exists():
            shutil.copyfile(wal, str(copy) + ".wal")
    finally:
        con.close()
    return str(copy), version


def _merge_into(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, dict[str, dict[int, int]]]:
    ours = set(base_tables(con, catalog=_catalog(con)))
    theirs = base_tables(con, catalog=SRC)
    missing = sorted(set(theirs) - ours - SKIP)
    if missing:
        raise MergeError(f"merge: the other store has tables this one lacks: {', '.join(missing)}")
    maps: dict[str, dict[int, int]] = {}
    rows = []
    for t in ORDER + sorted(set(theirs) - set(ORDER) - SKIP):
        n_other = con.execute(f'SELECT count(*) FROM {SRC}."{t}"').fetchall()[0][0]
        if t in ID_TABLES:
            maps[t], added = _merge_id_table(con, t)
        else:
            added = _merge_keyed(con, t)
        rows.append((t, n_other, added))
    return pl.DataFrame(rows, schema=["table", "rows_in_other", "rows_added"], orient="row"), maps


def _catalog(con) -> str:
    return con.execute("SELECT current_database()").fetchall()[0][0]


def _select_remapped(con, table: str, replace: dict[str, str] | None = None) -> tuple[str, str, list[str]]:
    """(select list, joins, columns) reading SRC.table with its id columns rewritten through maps."""
    cols = columns_of(con, f'{SRC}."{table}"')
    replace = dict(replace or {})
    joins = []
    for c in cols:
        if c in replace:
            continue
        target = REMAP.get(c)
        if target and target != table:
            alias = f"_m_{c}"
            joins.append(f"LEFT JOIN _merge_map_{target} {alias} ON {alias}.old = s.\"{c}\"")
            replace[c] = (f'CASE WHEN s."{c}" = 0 THEN 0 ELSE {alias}.new END'
                          if (table, c) in ZERO_MEANS_NONE else f"{alias}.new")
    if table == "stability" and "reference_ingests" in cols:   # a list of ingest ids
        replace["reference_ingests"] = (
            "(SELECT list(_mi.new ORDER BY _mi.new) FROM unnest(s.reference_ingests) _u(old) "
            "JOIN _merge_map_ingests _mi ON _mi.old = _u.old)")
    select = ", ".join(f'{replace[c]} AS "{c}"' if c in replace else f's."{c}"' for c in cols)
    return select, " ".join(joins), cols


def _merge_keyed(con, table: str) -> int:
    select, joins, cols = _select_remapped(con, table)
    key = KEYS.get(table, cols)
    before = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
    on = " AND ".join(f't."{k}" IS NOT DISTINCT FROM n."{k}"' for k in key)
    col_list = ", ".join(f'"{c}"' for c in cols)
    con.execute(f"""
        INSERT INTO "{table}" ({col_list})
        SELECT {col_list} FROM (SELECT {select} FROM {SRC}."{table}" s {joins}) n
        WHERE NOT EXISTS (SELECT 1 FROM "{table}" t WHERE {on})""")
    return con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0] - before


def _merge_id_table(con, table: str) -> tuple[dict[int, int], int]:
    id_col, ident, seq = ID_TABLES[table]
    cast = {"params": "::VARCHAR"}
    on = " AND ".join(f't."{k}"{cast.get(k, "")} IS NOT DISTINCT FROM s."{k}"{cast.get(k, "")}' for k in ident)
    pairs = con.execute(f"""
        SELECT s."{id_col}", min(t."{id_col}") FROM {SRC}."{table}" s
        LEFT JOIN "{table}" t ON {on} GROUP BY s."{id_col}" ORDER BY s."{id_col}" """).fetchall()
    mapping = {old: new for old, new in pairs if new is not None}
    fresh = [old for old, new in pairs if new is None]
    for old, new in zip(fresh, _new_ids(con, table, id_col, seq, len(fresh))):
        mapping[old] = new
    con.execute(f"CREATE OR REPLACE TEMP TABLE _merge_map_{table} (old INTEGER, new INTEGER)")
    if mapping:
        con.execute(f"INSERT INTO _merge_map_{table} SELECT unnest(?::INTEGER[]), unnest(?::INTEGER[])",
                    [list(mapping), list(mapping.values())])
    if table == "runs":
        _refresh_matched_runs(con, [old for old, new in pairs if new is not None])
    if not fresh:
        return mapping, 0
    replace = {id_col: "_self.new"}
    if table == "model_versions":
        replace["version"] = "_ver.new_version"
        _renumber_versions(con, fresh)
    select, joins, cols = _select_remapped(con, table, replace)
    joins = f"JOIN _merge_map_{table} _self ON _self.old = s.\"{id_col}\" " + joins
    if table == "model_versions":
        joins += ' JOIN _merge_versions _ver ON _ver.old = s."model_id"'
    col_list = ", ".join(f'"{c}"' for c in cols)
    con.execute(f"""INSERT INTO "{table}" ({col_list}) SELECT {select} FROM {SRC}."{table}" s {joins}
                    WHERE s."{id_col}" IN (SELECT unnest(?::INTEGER[]))""", [fresh])
    return mapping, len(fresh)


def _refresh_matched_runs(con, matched: list[int]) -> None:
    """A run both stores have, that went further in theirs (a run merged while it was going):
    take their status and counters; its extra batches come in with run_batches/generated."""
    if not matched:
        return
    con.execute(f"""
        UPDATE runs SET status = s.status, finished_at = s.finished_at, n_written = s.n_written,
                        rows_per_s = s.rows_per_s
        FROM {SRC}.runs s JOIN _merge_map_runs m ON m.old = s.run_id
        WHERE runs.run_id = m.new AND s.run_id IN (SELECT unnest(?::INTEGER[]))
          AND (SELECT count(*) FROM {SRC}.run_batches b WHERE b.run_id = s.run_id)
            > (SELECT count(*) FROM run_batches b WHERE b.run_id = runs.run_id)""", [matched])


def _new_ids(con, table: str, id_col: str, seq: str | None, n: int) -> list[int]:
    """n unused ids: max+1.. for plain tables; from the sequence (skipped past max) otherwise."""
    if n == 0:
        return []
    top = con.execute(f'SELECT coalesce(max("{id_col}"), 0) FROM "{table}"').fetchall()[0][0]
    if seq is None:
        return list(range(top + 1, top + 1 + n))
    ids: list[int] = []
    while len(ids) < n:  # DuckDB has no setval: draw until past ids that were set explicitly
        got = [r[0] for r in con.execute(f"SELECT nextval('{seq}') FROM range(?)", [n - len(ids)]).fetchall()]
        ids.extend(i for i in got if i > top)
    return ids


def _renumber_versions(con, fresh: list[int]) -> None:
    """Versions for incoming models: kept where free for the name, else after the name's last."""
    rows = con.execute(f"""SELECT model_id, name, version FROM {SRC}.model_versions
                           WHERE model_id IN (SELECT unnest(?::INTEGER[])) ORDER BY name, version""",
                       [fresh]).fetchall()
    taken: dict[str, set[int]] = {}
    for name, version in con.execute("SELECT name, version FROM model_versions").fetchall():
        taken.setdefault(name, set()).add(version)
    out = []
    for model_id, name, version in rows:
        used = taken.setdefault(name, set())
        new = version if version not in used else max(used) + 1
        used.add(new)
        out.append((model_id, new))
    con.execute("CREATE OR REPLACE TEMP TABLE _merge_versions (old INTEGER, new_version INTEGER)")
    con.execute("INSERT INTO _merge_versions SELECT unnest(?::INTEGER[]), unnest(?::INTEGER[])",
                [[r[0] for r in out], [r[1] for r in out]])


def _q(p: str) -> str:
    return str(p).replace("'", "''")
