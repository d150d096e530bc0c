"""The one place matstore opens a DuckDB connection (tests/adversarial/test_open.py holds every
other module to it).

Every connection, read or write, to a store or in memory, gets DuckDB's guards as connect-time
configuration, so they hold before the first statement touches the file:

- `enable_external_access = false`: no COPY TO/FROM, EXPORT/IMPORT, ATTACH, read_csv/read_text/
  glob & co., except the exact files (`write_paths`) and folders (`write_dirs`) that the command
  itself must write or attach (an export's temporary folder, a merge's private copy);
- extensions: no autoinstall, no autoload, no community or unsigned extensions, no persistent
  secrets (nothing is read from or created under `~/.duckdb`);
- `temp_directory`: a folder inside this process's private temporary folder, not DuckDB's default
  `<store>.tmp` next to the store (DuckDB lets a guarded connection write its temp folder);
- `lock_configuration = true`: SQL cannot SET any of this back (session settings such as
  `search_path` remain). DuckDB accepts it only as a statement once `enable_progress_bar = false`
  (a session setting: DuckDB's own bar would print into matstore's output) has been set, so both
  are the first statements of every connection, before any statement reads the file.

DuckDB 2.0.1 refuses `allowed_paths` / `allowed_directories` as connect-time configuration
("before the database is started") and refuses to change them once external access is off. So a
connection that must write somewhere (export, models export, merge's attach) is opened with
everything else as configuration and gets those three settings (allowed paths, external access
off, configuration locked) as its first statements, before any statement reads the file: opening
a DuckDB file runs none of its SQL (views are bound only when queried).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Iterable

import duckdb

GUARD_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
}
_PRIVATE: list[str] = []


def _private_temp() -> str:
    """This process's own 0700 temporary folder (removed at exit): DuckDB's spill folder, which a
    guarded connection may write, holds nothing of anyone else's. One per process: DuckDB refuses
    a second connection to an open file with another configuration."""
    if not _PRIVATE or not os.path.isdir(_PRIVATE[0]):
        _PRIVATE[:] = [tempfile.mkdtemp(prefix="matstore-duckdb-")]
        atexit.register(shutil.rmtree, _PRIVATE[0], True)
    return os.path.join(_PRIVATE[0], "spill")


def open_duckdb(path: str = ":memory:", *, read_only: bool = False, write_paths: Iterable[str] = (),
                write_dirs: Iterable[str] = ()) -> duckdb.DuckDBPyConnection:
    """A guarded DuckDB connection to path (a file, or ":memory:").

    write_paths / write_dirs: the only files / folders (with everything below them) that SQL on
    this connection may reach besides the database itself; matstore passes paths it chose, never
    one from the store or the user's SQL."""
    config: dict = dict(GUARD_CONFIG)
    paths = [os.path.abspath(p) for p in write_paths]
    dirs = [os.path.join(os.path.abspath(d), "") for d in write_dirs]
    config["temp_directory"] = _private_temp()
    if paths or dirs:  # DuckDB refuses these at connect time; set below, external access after them
        del config["enable_external_access"]
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    try:
        # DuckDB's own progress bar (a slow query, e.g. under load) would print into matstore's
        # output; a session setting, so it is set here, before the configuration is locked
        try:
            con.execute("SET enable_progress_bar = false")
        except duckdb.InvalidInputException:
            # another connection of this process to the same file already locked the instance:
            # its guards hold (checked), only this session keeps DuckDB's default bar
            if paths or dirs or not _locked_and_guarded(con):
                raise
            return con
        if paths:
            con.execute("SET allowed_paths = ?", [paths])
        if dirs:
            con.execute("SET allowed_directories = ?", [dirs])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _locked_and_guarded(con: duckdb.DuckDBPyConnection) -> bool:
    got = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                           "('lock_configuration', 'enable_external_access')").fetchall())
    return got == {"lock_configuration": "true", "enable_external_access": "false"}
