"""The temporary copy of a received store: made beside this store under a read lock on the
other file, recorded with its owner so a copy left by a killed merge is removed later, and
upgraded to our schema there (never the collaborator's file)."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import socket
import tempfile
import time
from pathlib import Path

import duckdb

from .. import locking, migrations
from ..recovery import pid_alive, this_process_start
from ..store import Store, is_lock_error
from ..catalogue import CatalogueError, check as check_catalogue
from ..connection import open_duckdb
from .base import MergeError

COPY_PREFIX = ".matstore-merge-"
OWNER_FILE = "owner.json"
ORPHAN_AGE_S = 3600  # a copy folder without an owner file (older matstore, or killed at birth)


def make_copy_dir(folder: Path) -> Path:
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


def open_guarded(path: Path, deadline: float, write_paths=()) -> duckdb.DuckDBPyConnection:
    """A read-only guarded connection (connection.open_duckdb), retried while the file is locked.
    write_paths: files it may attach (the merge's private copy)."""
    delay = 0.005
    while True:
        try:
            locking.wait_turn(str(path), deadline)
            return open_duckdb(str(path), read_only=True, write_paths=write_paths)
        except locking.GateTimeout as e:
            raise MergeError(f"merge: cannot read {path}: {e}") from e
        except duckdb.Error as e:
            if not (isinstance(e, duckdb.IOException) and is_lock_error(e)) or time.monotonic() > deadline:
                raise MergeError(f"merge: cannot read {path}: {e}") from e
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.5, 0.1)


def snapshot(other: Path, tmpdir: Path) -> tuple[str, int]:
    """Copy other (and its WAL) while holding a read lock on it, so the copy is consistent."""
    con = open_guarded(other, time.monotonic() + Store(other, read_only=True).lock_timeout)
    try:
        try:
            version = check_catalogue(con, str(other))
        except CatalogueError as e:
            raise MergeError(f"merge: {e}") from None
        except duckdb.Error as e:
            raise MergeError(f"merge: {other} is not a matstore store: {e}") from e
        if version is None:
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


def upgrade(copy: str, other: Path) -> None:
    """Apply our migrations to the copy (guards on: a migration needs no file access)."""
    try:
        con = open_duckdb(copy)
        try:
            migrations.migrate(con, copy)
        finally:
            con.close()
    except (duckdb.Error, OSError) as e:
        raise MergeError(f"merge: cannot upgrade a copy of {other} to schema version "
                         f"{migrations.latest_version()}: {e}") from e
