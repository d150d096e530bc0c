"""`matstore merge OTHER.duckdb`: import a collaborator's store into this one.

A received store is untrusted data (docs/security.md). Rules:
- The other file is never touched: it is read once (under a read lock) into a temporary copy
  beside this store; a copy with an older schema is upgraded (migrated) there, a file with a
  newer schema is refused before anything is copied. The copy's folder records its owner
  (pid, start time, host): a merge killed with -9 leaves it behind, and the next merge in that
  folder removes copies whose owner is dead. A copy that fails (disk full) is a MergeError.
- Every connection that reads the other file runs with DuckDB's guards: no file system access
  (no COPY TO, read_csv, ATTACH of more files once the copy is attached), no extension
  install/autoload. The copy is attached READ_ONLY.
- Before anything is written, the copy is validated completely (``validate``): its tables and
  columns (names and types) equal the schema our migrations build for that version, so no name
  from the file ever reaches SQL (every identifier comes from our own schema); every
  composition's key, formula, n_elements and n_atoms are recomputed from its elements and counts
  (elements known, counts in 1..compositions.MAX_COUNT, reduced, canonical order); a key already
  used here for another composition is refused (collision); every material_id is recomputed from
  (source, external_id); every reference (composition, material, ingest, model, run) points at a
  row of the other file; property and prediction values are finite; model weights match their
  sha256 and forests are in the array format (never a pickle). The first problem found is a
  MergeError naming it, and this store is left as it was.
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

import errno
import hashlib
import json
import math
import os
import random
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from . import compositions as C
from . import locking, migrations
from .errors import MatstoreError
from .recovery import pid_alive, this_process_start
from .store import Store, is_lock_error as _is_lock_error

SRC = "_matstore_merge_src"
COPY_PREFIX = ".matstore-merge-"
OWNER_FILE = "owner.json"
ORPHAN_AGE_S = 3600  # a copy folder without an owner file (older matstore, or killed at birth)

# DuckDB settings for every connection that reads a received file.
_NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
GUARDS = {"enable_external_access": False, **_NO_EXTENSIONS}

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
    "sources": ["name"],  # one kind per source name: a different one is refused (_check_sources)
    "stability": ["composition_id", "model_id", "reference"],
}
# id columns where 0 means "none" (stability.model_id 0: the reference's own energies): kept as 0
ZERO_MEANS_NONE = {("stability", "model_id")}
ORDER = ["ingests", "model_versions", "runs"]  # maps first; then the rest
SKIP = {"schema_migrations", "validity_checkers"}  # local bookkeeping: which checker our views use
# (table, column, parent table, parent column): every non-NULL value must be a row of the parent
# in the other file itself, so nothing received can attach to one of our rows by a forged id.
REFERENCES = [
    ("materials", "composition_id", "compositions", "composition_id"),
    ("properties", "composition_id", "compositions", "composition_id"),
    ("features", "composition_id", "compositions", "composition_id"),
    ("validity", "composition_id", "compositions", "composition_id"),
    ("generated", "composition_id", "compositions", "composition_id"),
    ("predictions", "composition_id", "compositions", "composition_id"),
    ("composition_sets", "composition_id", "compositions", "composition_id"),
    ("properties", "material_id", "materials", "material_id"),
    ("materials", "ingest_id", "ingests", "ingest_id"),
    ("rejects", "ingest_id", "ingests", "ingest_id"),
    ("runs", "model_id", "model_versions", "model_id"),
    ("predictions", "model_id", "model_versions", "model_id"),
    ("composition_sets", "model_id", "model_versions", "model_id"),
    ("run_batches", "run_id", "runs", "run_id"),
    ("generated", "run_id", "runs", "run_id"),
    ("predictions", "run_id", "runs", "run_id"),
    ("stability", "composition_id", "compositions", "composition_id"),
    ("stability", "run_id", "runs", "run_id"),
    ("curated", "ingest_id", "ingests", "ingest_id"),
]
UNIQUE = {"ingests": ["ingest_id"], "model_versions": ["model_id"], "runs": ["run_id"],
          "compositions": ["composition_id"], "materials": ["material_id"]}
FINITE = [("properties", "value"), ("predictions", "value"), ("stability", "e_above_hull"),
          ("stability", "formation_energy_per_atom")]
# Limits of a received composition: the ingest's own (compositions.MAX_COUNT per element; atoms
# per formula unit where compositions defines MAX_ATOMS, else what the INTEGER counts allow).
MAX_COUNT = C.MAX_COUNT
MAX_ATOMS = getattr(C, "MAX_ATOMS", None)


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
    folder = Path(store.path).resolve().parent
    remove_stale_copies(folder)
    tmpdir = _make_copy_dir(folder)
    try:
        copy, version = _snapshot(other, tmpdir)
        upgraded = version < migrations.latest_version()
        if upgraded:  # upgrade only the copy, never the collaborator's file
            _upgrade(copy, other)
        schema = expected_schema()
        _validate_read_only(store, copy, schema, str(other))  # a refusal leaves the file as it was
        try:
            with store.connect(write=True) as con, _attached(con, copy):
                con.execute("BEGIN TRANSACTION")
                try:
                    _check_against_ours(con, schema, str(other))  # again: this store may have changed
                    added, maps = _merge_into(con, schema)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except duckdb.Error as e:
            raise MergeError(f"merge: writing into {store.path} failed, nothing was changed: {e}") from e
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return MergeResult(str(other), version, upgraded, added, maps)


@contextmanager
def _attached(con, copy: str) -> Iterator[None]:
    """The copy attached read-only as SRC; from then on this connection touches no other file
    (no COPY TO, read_csv, ATTACH, extension install/load) and its configuration is locked."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_paths = ?", [[copy, copy + ".wal"]])
    con.execute("SET enable_external_access = false")  # until this connection closes
    con.execute("SET lock_configuration = true")
    con.execute(f"ATTACH '{_q(copy)}' AS {SRC} (READ_ONLY)")
    try:
        yield
    finally:
        con.execute(f"DETACH {SRC}")


def _validate_read_only(store: Store, copy: str, schema: dict, other: str) -> None:
    """validate() on a read-only connection to this store, so a refusal changes no byte of it."""
    for attempt in range(2):
        con = _open_guarded(Path(store.path), time.monotonic() + store.lock_timeout, _NO_EXTENSIONS)
        try:
            if migrations.current_version(con) < migrations.latest_version() and not attempt:
                con.close()
                with store.connect(write=True):  # an older store is upgraded first, as by any write
                    pass
                continue
            with _attached(con, copy):
                try:
                    validate(con, schema, other)
                except duckdb.Error as e:
                    raise MergeError(f"merge: {other} cannot be checked: {e}; nothing was merged") from e
            return
        finally:
            con.close()


# --- the temporary copy ----------------------------------------------------------------------------

def _make_copy_dir(folder: Path) -> Path:
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=COPY_PREFIX, dir=folder))
        owner = {"pid": os.getpid(), "started": this_process_start(), "host": socket.gethostname()}
        (tmpdir / OWNER_FILE).write_text(json.dumps(owner))
    except OSError as e:
        if "tmpdir" in locals():
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise MergeError(f"merge: cannot make a temporary folder in {folder}: {e.strerror or e}") from e
    return tmpdir


def remove_stale_copies(folder: str | Path) -> list[Path]:
    """Remove merge copies in folder left by a merge that died (owner dead on this host; or no
    owner file and older than ORPHAN_AGE_S). Returns the folders removed."""
    removed = []
    host = socket.gethostname()
    for d in Path(folder).glob(COPY_PREFIX + "*"):
        if not d.is_dir() or d.is_symlink():
            continue
        try:
            owner = json.loads((d / OWNER_FILE).read_text())
            dead = owner.get("host") == host and not pid_alive(int(owner["pid"]), owner.get("started"))
        except FileNotFoundError:
            try:
                dead = time.time() - d.stat().st_mtime > ORPHAN_AGE_S
            except OSError:
                continue
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable owner file: not ours to judge
        if dead:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _open_guarded(path: Path, deadline: float, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection (default: with all GUARDS), retried while the file is locked."""
    delay = 0.005
    while True:
        try:
            locking.wait_turn(str(path), deadline)
            return duckdb.connect(str(path), read_only=True, config=GUARDS if config is None else config)
        except locking.GateTimeout as e:
            raise MergeError(f"merge: cannot read {path}: {e}") from e
        except duckdb.Error as e:
            if not (isinstance(e, duckdb.IOException) and _is_lock_error(e)) or time.monotonic() > deadline:
                raise MergeError(f"merge: cannot read {path}: {e}") from e
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.5, 0.1)


def _snapshot(other: Path, tmpdir: Path) -> tuple[str, int]:
    """Copy other (and its WAL) while holding a read lock on it, so the copy is consistent."""
    con = _open_guarded(other, time.monotonic() + Store(other, read_only=True).lock_timeout)
    try:
        try:
            version = migrations.check_not_newer(con, str(other))
        except duckdb.Error as e:
            raise MergeError(f"merge: {other} is not a matstore store: {e}") from e
        if version == 0:
            raise MergeError(f"merge: {other} is not a matstore store (no schema_migrations table)")
        copy = tmpdir / "other.duckdb"
        try:
            shutil.copyfile(other, copy)
            wal = Path(str(other) + ".wal")
            if wal.exists():
                shutil.copyfile(wal, str(copy) + ".wal")
        except OSError as e:
            why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
            raise MergeError(f"merge: cannot copy {other} ({other.stat().st_size / 1e6:.0f} MB) into "
                             f"{tmpdir.parent}: {why}; nothing was changed") from e
    finally:
        con.close()
    return str(copy), version


def _upgrade(copy: str, other: Path) -> None:
    """Apply our migrations to the copy (guards on: a migration needs no file access)."""
    try:
        con = duckdb.connect(copy, config=GUARDS)
        try:
            migrations.migrate(con, copy)
        finally:
            con.close()
    except (duckdb.Error, OSError) as e:
        raise MergeError(f"merge: cannot upgrade a copy of {other} to schema version "
                         f"{migrations.latest_version()}: {e}") from e


# --- validation ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _expected_schema_cached(version: int) -> tuple:
    con = duckdb.connect(":memory:", config=GUARDS)
    try:
        migrations.migrate(con, ":memory:")
        return tuple(_schema_of(con, "memory").items())
    finally:
        con.close()


def expected_schema() -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, type)] that our migrations build at the latest version."""
    return dict(_expected_schema_cached(migrations.latest_version()))


def _schema_of(con, catalog: str) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_catalog = c.table_catalog "
        " AND t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_catalog = ? AND c.table_schema = 'main' AND t.table_type = 'BASE TABLE' "
        "ORDER BY c.table_name, c.ordinal_position", [catalog]).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def validate(con, schema: dict[str, list[tuple[str, str]]], other: str) -> None:
    """Check the attached copy (SRC) completely; raises MergeError naming the first problem."""
    _check_schema(_schema_of(con, SRC), schema, other)
    for table, cols in UNIQUE.items():
        _check_unique(con, table, cols, other)
    _check_compositions(con, other)
    _check_materials(con, other)
    for table, col, parent, pcol in REFERENCES:
        _check_reference(con, table, col, parent, pcol, other)
    n = _count(con, f"""SELECT count(*) FROM {SRC}.properties p JOIN {SRC}.materials m
                        USING (material_id) WHERE p.composition_id <> m.composition_id""")
    if n:
        raise MergeError(f"merge: {other}: {n} properties name another composition than their material")
    for table, col in FINITE:
        n = _count(con, f"SELECT count(*) FROM {SRC}.{_id(table)} WHERE {_id(col)} IS NOT NULL "
                        f"AND NOT isfinite({_id(col)})")
        if n:
            raise MergeError(f"merge: {other}: {n} rows of {table} have a non-finite {col} (inf/NaN)")
    _check_models(con, other)
    _check_against_ours(con, schema, other)


def _check_against_ours(con, schema: dict, other: str) -> None:
    """What depends on this store's rows: the same schema, no composition_id that is another
    composition here (a key collision or a forged row), no formula under another id, feature
    vectors of the same length."""
    _check_schema(_schema_of(con, _catalog(con)), schema, "this store")
    clash = con.execute(f"""
        SELECT s.composition_id, s.formula, t.formula FROM {SRC}.compositions s
        JOIN compositions t USING (composition_id)
        WHERE (s.formula, s.elements, s.counts, s.n_elements, s.n_atoms)
              IS DISTINCT FROM (t.formula, t.elements, t.counts, t.n_elements, t.n_atoms)
        LIMIT 1""").fetchall()
    if clash:
        cid, theirs, ours = clash[0]
        raise MergeError(f"merge: {other}: composition_id {cid} is {theirs!r} there but {ours!r} "
                         f"here (a key collision or a forged row); nothing was merged")
    dup = con.execute(f"""
        SELECT s.formula FROM {SRC}.compositions s JOIN compositions t
          ON t.formula = s.formula AND t.composition_id <> s.composition_id LIMIT 1""").fetchall()
    if dup:
        raise MergeError(f"merge: {other}: formula {dup[0][0]!r} has another composition_id there "
                         f"than here; nothing was merged")
    _check_features(con, other)
    _check_sources(con)


def _check_schema(got: dict, want: dict, who: str) -> None:
    version = migrations.latest_version()
    extra = sorted(set(got) - set(want))
    if extra:
        raise MergeError(f"merge: {who} has table {extra[0]!r}, which matstore's schema "
                         f"(version {version}) does not have; nothing was merged")
    missing = sorted(set(want) - set(got))
    if missing:
        raise MergeError(f"merge: {who} lacks table {missing[0]!r} of matstore's schema "
                         f"(version {version}); nothing was merged")
    for table, cols in want.items():
        if got[table] == cols:
            continue
        unknown = [c for c, _ in got[table] if c not in dict(cols)]
        if unknown:
            raise MergeError(f"merge: {who}: table {table!r} has column {unknown[0]!r}, which is not "
                             f"in matstore's schema (expected {[c for c, _ in cols]}); nothing was merged")
        raise MergeError(f"merge: {who}: table {table!r} has columns {got[table]}, matstore's schema "
                         f"(version {version}) has {cols}; nothing was merged")


def _check_unique(con, table: str, cols: list[str], other: str) -> None:
    key = ", ".join(_id(c) for c in cols)
    nulls = " OR ".join(f"{_id(c)} IS NULL" for c in cols)
    n, distinct, n_null = con.execute(
        f"SELECT count(*), count(DISTINCT ({key})), count(*) FILTER ({nulls}) "
        f"FROM {SRC}.{_id(table)}").fetchall()[0]
    if n != distinct or n_null:
        raise MergeError(f"merge: {other}: {table}.{'/'.join(cols)} is not a unique id "
                         f"({n - distinct} duplicate, {n_null} empty)")


def composition_problem(row: dict) -> str | None:
    """Why a compositions row is not what matstore.compositions makes of its elements and counts
    (None when it is): unknown element, count out of range, not reduced or not canonical, or a
    formula / key / n_elements / n_atoms that differs from the recomputed one."""
    els, counts = row["elements"], row["counts"]
    if not els or counts is None or len(els) != len(counts):
        return "elements and counts do not pair up"
    unknown = [e for e in els if e not in C.Z_OF]
    if unknown:
        return f"unknown element {unknown[0]!r}"
    if len(set(els)) != len(els):
        return "an element appears twice"
    if any(c is None or c < 1 or c > MAX_COUNT for c in counts):
        return f"a count is outside 1..{MAX_COUNT}"
    if MAX_ATOMS is not None and sum(counts) > MAX_ATOMS:
        return f"{sum(counts)} atoms per formula unit exceed {MAX_ATOMS}"
    if math.gcd(*counts) != 1:
        return "counts are not reduced"
    if list(els) != C._sort_order(els):
        return "elements are not in canonical order"
    cmap = dict(zip(els, counts))
    formula = C.reduced_formula(cmap)
    if row["formula"] != formula:
        return f"formula {row['formula']!r} is not {formula!r}, the formula of its elements and counts"
    key = C.composition_key(cmap)
    if row["composition_id"] != key:
        return f"composition_id is not {key}, the key of its elements and counts"
    if row["n_elements"] != len(els) or row["n_atoms"] != sum(counts):
        return "n_elements/n_atoms do not match its counts"
    return None


def _check_compositions(con, other: str) -> None:
    """Every composition new to this store recomputed (one we have is compared as a whole row
    by _check_against_ours)."""
    new = pl.from_arrow(con.sql(f"""
        SELECT composition_id, formula, elements, counts, n_elements, n_atoms
        FROM {SRC}.compositions s
        WHERE NOT EXISTS (SELECT 1 FROM compositions t WHERE t.composition_id = s.composition_id)
        """).to_arrow_table())
    bad = []
    for row in new.iter_rows(named=True):
        why = composition_problem(row)
        if why:
            bad.append(f"{row['formula']!r} (id {row['composition_id']}): {why}")
            if len(bad) == 3:
                break
    if bad:
        n = "several" if len(bad) == 3 else len(bad)
        raise MergeError(f"merge: {other}: {n} invalid compositions, e.g. {'; '.join(bad)}; "
                         f"nothing was merged")


def _check_materials(con, other: str) -> None:
    from .ingest import material_ids  # noqa: PLC0415 (ingest is heavy; only merge needs it here)

    mats = con.execute(f"SELECT source, external_id, material_id FROM {SRC}.materials "
                       f"ORDER BY source").fetchall()
    by_source: dict[str, list[tuple[str, int]]] = {}
    for source, ext, mid in mats:
        if source is None or ext is None:
            raise MergeError(f"merge: {other}: material {mid} has no source/external_id")
        by_source.setdefault(source, []).append((ext, mid))
    for source, rows in by_source.items():
        want = material_ids(source, [r[0] for r in rows])
        for (ext, mid), w in zip(rows, want):
            if mid != w:
                raise MergeError(f"merge: {other}: material_id {mid} of ({source!r}, {ext!r}) is not "
                                 f"{w}, the id of its source and external id; nothing was merged")


def _check_reference(con, table, col, parent, pcol, other) -> None:
    n = _count(con, f"""SELECT count(*) FROM {SRC}.{_id(table)} c WHERE c.{_id(col)} IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM {SRC}.{_id(parent)} p
                                        WHERE p.{_id(pcol)} = c.{_id(col)})""")
    if n:
        raise MergeError(f"merge: {other}: {n} rows of {table} point at a {col} that is not in its "
                         f"{parent}; nothing was merged")


def _check_features(con, other: str) -> None:
    rows = con.execute(f"""
        WITH s AS (SELECT featurizer, version, min(len(vector)) AS lo, max(len(vector)) AS hi
                   FROM {SRC}.features GROUP BY ALL),
             t AS (SELECT featurizer, version, min(len(vector)) AS n FROM features GROUP BY ALL)
        SELECT s.featurizer, s.version, s.lo, s.hi, t.n FROM s LEFT JOIN t USING (featurizer, version)
        WHERE s.lo <> s.hi OR s.lo <> coalesce(t.n, s.lo) LIMIT 1""").fetchall()
    if rows:
        f, v, lo, hi, ours = rows[0]
        raise MergeError(f"merge: {other}: features {f!r} version {v!r} have vectors of length "
                         f"{lo}..{hi}" + (f", here {ours}" if ours is not None else "")
                         + "; nothing was merged")


def _check_models(con, other: str) -> None:
    """Weights as recorded (sha256); forests in the array format, fully checked (a pickle is
    refused). Torch weights are not read here: they only ever load with weights_only=True, and
    an unknown kind or a bad config fails load_model with a clear error (and importing torch
    would cost every merge seconds)."""
    rows = con.execute(f"SELECT model_id, name, version, kind, weights, weights_sha256 "
                       f"FROM {SRC}.model_versions ORDER BY model_id").fetchall()
    for model_id, name, version, kind, w, sha in rows:
        ref = f"model {name}@{version} (id {model_id})"
        if w is not None and hashlib.sha256(w).hexdigest() != sha:
            raise MergeError(f"merge: {other}: {ref}: weights do not match their sha256; "
                             f"nothing was merged")
        if kind == "rf" and w is not None:
            from . import registry  # noqa: PLC0415 (imports torch: only when there is a forest)

            rec = pl.from_arrow(con.sql(f"SELECT * REPLACE (config::VARCHAR AS config) "
                                        f"FROM {SRC}.model_versions WHERE model_id = ?",
                                        params=[model_id]).to_arrow_table()).to_dicts()[0]
            try:
                rec["config"] = json.loads(rec["config"]) if rec["config"] else {}
                registry._rebuild(rec)
            except (ValueError, TypeError) as e:
                raise MergeError(f"merge: {other}: {ref} has a config that does not build: {e}") from None
            except registry.ModelError as e:
                raise MergeError(f"merge: {other}: {e}; nothing was merged") from None


def _count(con, sql: str) -> int:
    return con.execute(sql).fetchall()[0][0]


# --- writing -------------------------------------------------------------------------------------

def _merge_into(con: duckdb.DuckDBPyConnection, schema: dict) -> tuple[pl.DataFrame, dict[str, dict[int, int]]]:
    """Every name in the SQL below comes from our schema (validated equal to the copy's)."""
    maps: dict[str, dict[int, int]] = {}
    rows = []
    tables = set(schema) - SKIP
    for t in ORDER + sorted(tables - set(ORDER)):
        cols = [c for c, _ in schema[t]]
        n_other = _count(con, f"SELECT count(*) FROM {SRC}.{_id(t)}")
        if t in ID_TABLES:
            maps[t], added = _merge_id_table(con, t, cols)
        else:
            added = _merge_keyed(con, t, cols)
        rows.append((t, n_other, added))
    return pl.DataFrame(rows, schema=["table", "rows_in_other", "rows_added"], orient="row"), maps


def _check_sources(con) -> None:
    """A source name both stores use must mean the same kind of values (DFT / experiment)."""
    clash = con.execute(f"""
        SELECT s.name, t.kind, t.method, s.kind, s.method FROM {SRC}.sources s JOIN sources t USING (name)
        WHERE t.kind IS DISTINCT FROM s.kind OR t.method IS DISTINCT FROM s.method
        ORDER BY s.name""").fetchall()
    if clash:
        raise MergeError("merge: source name(s) recorded with another kind in the other store: " + "; ".join(
            f"{n}: here {k1}{' ' + m1 if m1 else ''}, there {k2}{' ' + m2 if m2 else ''}"
            for n, k1, m1, k2, m2 in clash) + " (nothing was changed)")


def _catalog(con) -> str:
    return con.execute("SELECT current_database()").fetchall()[0][0]


def _select_remapped(table: str, cols: list[str], replace: dict[str, str] | None = None) -> tuple[str, str]:
    """(select list, joins) reading SRC.table with its id columns rewritten through maps."""
    replace = dict(replace or {})
    joins = []
    for c in cols:
        if c in replace:
            continue
        target = REMAP.get(c)
        if target and target != table:
            alias = f"_m_{c}"
            joins.append(f"LEFT JOIN _merge_map_{target} {alias} ON {alias}.old = s.{_id(c)}")
            replace[c] = (f"CASE WHEN s.{_id(c)} = 0 THEN 0 ELSE {alias}.new END"
                          if (table, c) in ZERO_MEANS_NONE else f"{alias}.new")
    if table == "stability" and "reference_ingests" in cols:   # a list of ingest ids
        replace["reference_ingests"] = (
            "(SELECT list(_mi.new ORDER BY _mi.new) FROM unnest(s.reference_ingests) _u(old) "
            "JOIN _merge_map_ingests _mi ON _mi.old = _u.old)")
    select = ", ".join(f"{replace[c]} AS {_id(c)}" if c in replace else f"s.{_id(c)}" for c in cols)
    return select, " ".join(joins)


def _merge_keyed(con, table: str, cols: list[str]) -> int:
    select, joins = _select_remapped(table, cols)
    key = KEYS.get(table, cols)
    before = _count(con, f"SELECT count(*) FROM {_id(table)}")
    on = " AND ".join(f"t.{_id(k)} IS NOT DISTINCT FROM n.{_id(k)}" for k in key)
    col_list = ", ".join(_id(c) for c in cols)
    con.execute(f"""
        INSERT INTO {_id(table)} ({col_list})
        SELECT {col_list} FROM (SELECT {select} FROM {SRC}.{_id(table)} s {joins}) n
        WHERE NOT EXISTS (SELECT 1 FROM {_id(table)} t WHERE {on})""")
    return _count(con, f"SELECT count(*) FROM {_id(table)}") - before


def _merge_id_table(con, table: str, cols: list[str]) -> tuple[dict[int, int], int]:
    id_col, ident, seq = ID_TABLES[table]
    cast = {"params": "::VARCHAR"}
    on = " AND ".join(f"t.{_id(k)}{cast.get(k, '')} IS NOT DISTINCT FROM s.{_id(k)}{cast.get(k, '')}"
                      for k in ident)
    pairs = con.execute(f"""
        SELECT s.{_id(id_col)}, min(t.{_id(id_col)}) FROM {SRC}.{_id(table)} s
        LEFT JOIN {_id(table)} t ON {on} GROUP BY s.{_id(id_col)} ORDER BY s.{_id(id_col)} """).fetchall()
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
    select, joins = _select_remapped(table, cols, replace)
    joins = f"JOIN _merge_map_{table} _self ON _self.old = s.{_id(id_col)} " + joins
    if table == "model_versions":
        joins += ' JOIN _merge_versions _ver ON _ver.old = s."model_id"'
    col_list = ", ".join(_id(c) for c in cols)
    con.execute(f"""INSERT INTO {_id(table)} ({col_list}) SELECT {select} FROM {SRC}.{_id(table)} s {joins}
                    WHERE s.{_id(id_col)} IN (SELECT unnest(?::INTEGER[]))""", [fresh])
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
    top = _count(con, f"SELECT coalesce(max({_id(id_col)}), 0) FROM {_id(table)}")
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


def _id(name: str) -> str:
    """A quoted SQL identifier (names come from our schema; quotes doubled all the same)."""
    return '"' + str(name).replace('"', '""') + '"'


def _q(p: str) -> str:
    return str(p).replace("'", "''")
