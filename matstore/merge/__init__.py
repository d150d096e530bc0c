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

import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl

from .. import migrations
from ..store import Store, rollback
from ..catalogue import CatalogueError, check as check_catalogue
from .base import GUARDS, SRC, MergeError, literal
from .snapshot import COPY_PREFIX, OWNER_FILE, make_copy_dir, open_guarded, remove_stale_copies, snapshot, upgrade
from .validate import check_against_ours, composition_problem, expected_schema, validate
from .write import KEYS, merge_into

__all__ = ["COPY_PREFIX", "GUARDS", "KEYS", "OWNER_FILE", "SRC", "MergeError", "MergeResult",
           "composition_problem", "expected_schema", "merge", "remove_stale_copies", "validate"]


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
    tmpdir = make_copy_dir(folder)
    try:
        copy, version = snapshot(other, tmpdir)
        upgraded = version < migrations.latest_version()
        if upgraded:  # upgrade only the copy, never the collaborator's file
            upgrade(copy, other)
        schema = expected_schema()
        _validate_read_only(store, copy, schema, str(other))  # a refusal leaves the file as it was
        try:
            with store.connect(write=True, write_paths=_copy_paths(copy)) as con, _attached(con, copy):
                con.execute("BEGIN TRANSACTION")
                try:
                    check_against_ours(con, schema, str(other))  # again: this store may have changed
                    added, maps = merge_into(con, schema)
                    con.execute("COMMIT")
                except BaseException:
                    rollback(con)
                    raise
        except duckdb.Error as e:
            raise MergeError(f"merge: writing into {store.path} failed, nothing was changed: {e}") from e
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return MergeResult(str(other), version, upgraded, added, maps)


@contextmanager
def _attached(con, copy: str) -> Iterator[None]:
    """The copy attached read-only as SRC. The connection was opened (connection.open_duckdb)
    with the copy as its only reachable file (_copy_paths): no COPY TO, read_csv, ATTACH of
    another file, extension install/load, and its configuration is locked."""
    con.execute(f"ATTACH '{literal(copy)}' AS {SRC} (READ_ONLY)")
    try:
        yield
    finally:
        con.execute(f"DETACH {SRC}")


def _copy_paths(copy: str) -> list[str]:
    return [copy, copy + ".wal"]


def _validate_read_only(store: Store, copy: str, schema: dict, other: str) -> None:
    """validate() on a read-only connection to this store, so a refusal changes no byte of it."""
    for attempt in range(2):
        con = open_guarded(Path(store.path), time.monotonic() + store.lock_timeout, _copy_paths(copy))
        try:
            try:
                version = check_catalogue(con, store.path) or 0
            except CatalogueError as e:
                raise MergeError(f"merge: {e}") from None
            if version < migrations.latest_version() and not attempt:
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
