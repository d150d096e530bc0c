"""Every path matstore writes for the user (`--parquet`, `export parquet DIR`, `models export
FILE`, `report --out DIR`, `al export FILE`) is checked here, once, before anything is written.

- Never a store or what DuckDB and matstore keep beside it: the store file, `<store>.wal`,
  `.lock`, `.queue`, `.tmp` (and anything inside those), or a merge's `.matstore-merge-*` copy,
  nor a path that resolves to one of them (a symlink, `./s.duckdb`, `../dir/s.duckdb`, a hard
  link). "A store" is every store this process has named (`Store(path)` records it) and the
  default store.
- An existing file, or a non-empty folder, is replaced only with `overwrite`.
- A path that cannot be written (its parent is a file, a device such as /dev/full) is an
  OutputError, one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import MatstoreError

SIDE_FILES = ("", ".wal", ".lock", ".queue", ".tmp")
MERGE_COPY_PREFIX = ".matstore-merge-"
_STORES: set[str] = set()


class OutputError(MatstoreError, ValueError):
    """An output path matstore refuses to write; the message says why (nothing was written)."""


def protect(store_path: str | os.PathLike) -> None:
    """Record a store path: no output of this process may land on it or its side files."""
    _STORES.add(os.path.realpath(store_path))


def _protected() -> list[str]:
    from .store import default_path  # noqa: PLC0415

    return sorted(_STORES | {os.path.realpath(default_path())})


def refuse_store(path: str | os.PathLike) -> None:
    """OutputError when path is (or resolves to) a store or one of its side files."""
    _refuse_store(os.path.realpath(path), repr(str(path))[:200])


def _refuse_store(target: str, shown: str) -> None:
    for store in _protected():
        for suffix in SIDE_FILES:
            side = store + suffix
            if target == side or target.startswith(side + os.sep):
                what = "the store" if not suffix else f"the store's {suffix} {'folder' if suffix == '.tmp' else 'file'}"
                raise OutputError(f"output {shown} is {what} {store}; choose another path "
                                  f"(nothing was written)")
        if os.path.dirname(target) == os.path.dirname(store) and \
                os.path.basename(target).startswith(MERGE_COPY_PREFIX):
            raise OutputError(f"output {shown} is a merge copy beside the store {store}")
        if os.path.exists(target) and os.path.exists(store) and os.path.samefile(target, store):
            raise OutputError(f"output {shown} is the store {store} (a link to it)")


def check(path: str | os.PathLike, *, overwrite: bool = False, folder: bool = False,
          option: str = "output") -> Path:
    """path, checked to be written as a file (folder=False) or folder; OutputError otherwise."""
    shown = repr(str(path))[:200]
    if not str(path):
        raise OutputError(f"{option}: empty path")
    target = os.path.realpath(path)
    _refuse_store(target, shown)
    p = Path(path)
    if os.path.lexists(path):
        mode = os.stat(path).st_mode if os.path.exists(path) else 0
        if folder:
            if not stat.S_ISDIR(mode):
                raise OutputError(f"{option} {shown} exists and is not a folder (nothing was written)")
            if any(p.iterdir()) and not overwrite:
                raise OutputError(f"{option} {shown} is a folder that is not empty; add --overwrite "
                                  f"to replace what matstore wrote there (nothing was written)")
        else:
            if stat.S_ISDIR(mode):
                raise OutputError(f"{option} {shown} is a folder; give a file name")
            if not stat.S_ISREG(mode):
                raise OutputError(f"{option} {shown} is not a regular file (a device or pipe); "
                                  f"give a file name")
            if not overwrite:
                raise OutputError(f"{option} {shown} exists; add --overwrite to replace it "
                                  f"(nothing was written)")
    parent = Path(target).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{option} {shown}: {parent} is not a folder")
    return p
