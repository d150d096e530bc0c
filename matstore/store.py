"""The DuckDB file: opening it (with migrations and views), short transactions, Arrow appends.

DuckDB lets one process hold a file read-write at a time, so nothing here keeps a connection
open between units of work: every write is `with store.transaction() as con:` (open, write,
commit, close, ~25 ms of overhead), and opening retries while another process holds the lock.
Long jobs compute outside the connection and commit a batch at a time, so a user's
`matstore query` gets in between two batches.
"""

from __future__ import annotations

import os
import random
import time
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import duckdb

from . import catalogue, locking, migrations, outpaths
from .connection import open_duckdb
from .views import normalized_view_sql, package_views, view_definitions, view_question  # noqa: F401 (re-exported)
from .errors import MatstoreError
from .recovery import mark_interrupted

if TYPE_CHECKING:  # polars/pyarrow load when a frame is made: `matstore --help` needs neither
    import polars as pl
    import pyarrow as pa

DEFAULT_PATH = "matstore.duckdb"
_PREPARED: set[str] = set()  # paths migrated + views refreshed by this process
# `matstore --read-only` sets this for the command it runs (no process-wide environment change)
READ_ONLY: ContextVar[bool] = ContextVar("matstore_read_only", default=False)
_ROWS_CHECKED: dict[str, tuple] = {}  # path -> file state whose rows catalogue.check_rows passed


class StoreError(MatstoreError, RuntimeError):
    """A store that cannot be opened or used as asked; the message says why."""


def default_path() -> str:
    return os.environ.get("MATSTORE_DB", DEFAULT_PATH)


def is_lock_error(e: Exception) -> bool:
    text = str(e)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def create_views(con: duckdb.DuckDBPyConnection, temp: bool = False) -> None:
    """(Re)create every view, each after the views it declares it reads (matstore.views).

    temp=True creates them as TEMP views of this connection only: they shadow the file's views of
    the same name, so a read-only connection answers with the package's definitions, whatever a
    received file stores under those names."""
    kind = "TEMP VIEW" if temp else "VIEW"
    for v in package_views():
        try:
            con.execute(f'CREATE OR REPLACE {kind} "{v.name}" AS\n{v.body}')
        except duckdb.CatalogException as e:
            raise StoreError(f"view sql/{v.name}.sql does not compile: {e}") from None
        con.execute(f'COMMENT ON VIEW "{v.name}" IS ' + "'" + view_question(v.body).replace("'", "''") + "'")


def views_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the file holds every package view exactly as create_views makes it (DuckDB's
    normalized text and the comment)."""
    stored = {n: (s, c) for n, s, c in con.execute(
        "SELECT view_name, sql, comment FROM duckdb_views() WHERE NOT internal AND NOT temporary "
        "AND database_name = current_database() AND schema_name = 'main'").fetchall()}
    want = normalized_view_sql()
    return all(v.name in stored and stored[v.name] == (want.get(v.name), view_question(v.body))
               for v in package_views())


_VIEW_SQL: dict[str, str] = {}  # view -> DuckDB's normalized CREATE VIEW text of the package's


def package_views_and_builtins(con: duckdb.DuckDBPyConnection) -> bool:
    """Make a read connection answer with the package's views and DuckDB's built-in functions,
    whatever a (received) file stores under their names.

    Name resolution becomes temp -> built-ins -> the file, so a macro in the file named `round`
    changes nothing. Views the file holds exactly as the package defines them (DuckDB's
    normalized text, learned once per process) are used as they are; otherwise every view is
    created as a TEMP view, which shadows the file's. Returns whether TEMP views were made."""
    db, stored = con.execute(
        "SELECT current_database(), (SELECT list(struct_pack(name := view_name, body := sql)) "
        "FROM duckdb_views() WHERE NOT internal AND NOT temporary "
        "AND database_name = current_database())").fetchall()[0]
    path = 'temp.main,system.main,"' + db.replace('"', '""') + '".main'
    con.execute("SET search_path = '" + path.replace("'", "''") + "'")
    stored = {v["name"]: v["body"] for v in stored or []}
    for known in (_VIEW_SQL, catalogue.package_view_sql()):   # learned from made views, else rendered
        if known and all(stored.get(name) == sql for name, sql in known.items()):
            return False
    create_views(con, temp=True)
    made = con.execute("SELECT view_name, sql FROM duckdb_views() WHERE temporary").fetchall()
    _VIEW_SQL.update({name: sql.replace("CREATE TEMP VIEW", "CREATE VIEW", 1) for name, sql in made
                      if name in view_definitions()})
    return True


def drop_shadowing_macros(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop macros stored in the file that are named like a DuckDB built-in (a received file's
    `round` or `range` would change what the package's own SQL computes on a write connection,
    where the file's schema must come first in the search path). Returns their names."""
    found = con.execute(
        "SELECT DISTINCT function_name, function_type FROM duckdb_functions() "
        "WHERE NOT internal AND database_name = current_database() "
        "AND function_type IN ('macro', 'table_macro') "
        "AND function_name IN (SELECT function_name FROM duckdb_functions() WHERE internal)").fetchall()
    for name, kind in found:
        table = "TABLE " if kind == "table_macro" else ""
        con.execute(f'DROP MACRO {table}"' + name.replace('"', '""') + '"')
    return [name for name, _ in found]


class Store:
    """A matstore DuckDB file. Cheap to construct; connections are opened per unit of work."""

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool | None = None,
                 lock_timeout: float | None = None):
        self.path = str(Path(path if path is not None else default_path()))
        outpaths.protect(self.path)   # no output of this process may land on it
        # `matstore --read-only ...` (READ_ONLY) or MATSTORE_READ_ONLY=1 make every Store read-only
        self.read_only = (READ_ONLY.get() or os.environ.get("MATSTORE_READ_ONLY", "") not in ("", "0")
                          if read_only is None else read_only)
        self.lock_timeout = float(os.environ.get("MATSTORE_LOCK_TIMEOUT", 120)
                                  if lock_timeout is None else lock_timeout)

    def __repr__(self) -> str:
        return f"Store({self.path!r}{', read_only=True' if self.read_only else ''})"

    @classmethod
    def init(cls, path: str | os.PathLike | None = None) -> "Store":
        """Create (or upgrade) the file at path and return it. An existing file must be a matstore
        store or an empty DuckDB database: anything else is refused untouched."""
        store = cls(path)
        _check_init_target(store.path)
        with store.connect(write=True):
            pass
        return store

    @property
    def exists(self) -> bool:
        return Path(self.path).exists()

    def _open(self, write: bool, deadline: float, write_paths=(), write_dirs=()) -> duckdb.DuckDBPyConnection:
        if self.exists and not Path(self.path).is_file():   # a FIFO or device would hang DuckDB
            raise StoreError(f"cannot open store {self.path}: not a regular file")
        delay = 0.005
        while True:
            try:
                if not write:  # queue behind a writer that holds or waits for the store
                    locking.wait_turn(self.path, deadline)
                return open_duckdb(self.path, read_only=not write, write_paths=write_paths,
                                   write_dirs=write_dirs)
            except locking.GateTimeout as e:
                raise StoreError(f"{e} for {self.lock_timeout:.0f} s (MATSTORE_LOCK_TIMEOUT)") from e
            except duckdb.Error as e:
                if not isinstance(e, duckdb.IOException):   # not DuckDB, needs an extension, ...
                    raise StoreError(f"cannot open store {self.path}: "
                                     f"{catalogue.printable(str(e).splitlines()[0] if str(e) else e)}") from e
                if not is_lock_error(e) or time.monotonic() > deadline:
                    if is_lock_error(e):
                        raise StoreError(f"store {self.path} stayed locked by another process for "
                                         f"{self.lock_timeout:.0f} s: {e}") from e
                    raise StoreError(f"cannot open store {self.path}: {catalogue.printable(e)}") from e
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.5, 0.1)

    @contextmanager
    def connect(self, write: bool = False, guarded: bool = True, *, write_paths=(), write_dirs=(),
                user_sql: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work, closed on exit. Writes need write=True.

        Every connection is opened by connection.open_duckdb (DuckDB's external-access guards as
        connect-time configuration; write_paths / write_dirs: the files / folders the command
        itself writes or attaches) and the file's catalogue is checked (catalogue.check) before
        anything of it is read. Read connections see the package's views (TEMP views shadowing
        the file's) and DuckDB's built-in functions before any macro stored in the file.
        user_sql: the connection runs a user's own SQL (`query`), which may inspect and delete
        rows that matstore's bounds refuse (catalogue.check_rows). guarded: kept for callers;
        every connection is guarded."""
        if write and self.read_only:
            raise StoreError(f"store {self.path} was opened read-only; this command writes")
        if not write and not self.exists:
            raise StoreError(f"no store at {self.path}; create one with `matstore init {self.path}`")
        deadline = time.monotonic() + self.lock_timeout
        if not write:
            con = self._open(False, deadline, write_paths, write_dirs)
            try:
                self._check_readable(con)
                if not user_sql:
                    self._check_rows(con)
                package_views_and_builtins(con)
                yield con
            finally:
                con.close()
            return
        with ExitStack() as stack:  # the writer's turn covers open .. close (and the checkpoint)
            try:
                stack.enter_context(locking.writer_turn(self.path, deadline))
            except locking.GateTimeout as e:
                raise StoreError(f"{e} for {self.lock_timeout:.0f} s (MATSTORE_LOCK_TIMEOUT)") from e
            con = self._open(True, deadline, write_paths, write_dirs)
            try:
                self._check_catalogue(con)
                self._prepare(con)
                if not user_sql:
                    self._check_rows(con)
                yield con
            finally:
                con.close()

    def forget_prepared(self) -> None:
        """Prepare this path again on the next write open (migrate, views, mark dead runs
        interrupted), as a fresh process would."""
        _PREPARED.discard(self.path)

    def _prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.path in _PREPARED:
            return
        # a file whose views are already the package's (a copy of a prepared store, the next
        # command on the same file) keeps them: re-creating all of them costs ~0.2 s per process
        if migrations.migrate(con, self.path) or not views_current(con):
            create_views(con)
        drop_shadowing_macros(con)
        mark_interrupted(con)
        _PREPARED.add(self.path)

    def _check_catalogue(self, con: duckdb.DuckDBPyConnection) -> int:
        try:
            return catalogue.check(con, self.path)
        except catalogue.CatalogueError as e:
            raise StoreError(str(e)) from None

    def _check_rows(self, con: duckdb.DuckDBPyConnection) -> None:
        """catalogue.check_rows, once per state of the file (size and mtime of it and its WAL)."""
        state = tuple((s.st_size, s.st_mtime_ns) for s in
                      (os.stat(p) for p in (self.path, self.path + ".wal") if os.path.exists(p)))
        if _ROWS_CHECKED.get(self.path) == state:
            return
        try:
            catalogue.check_rows(con, self.path)
        except catalogue.CatalogueError as e:
            raise StoreError(str(e)) from None
        _ROWS_CHECKED[self.path] = state

    def _check_readable(self, con: duckdb.DuckDBPyConnection) -> None:
        have = self._check_catalogue(con)
        if have is None:
            raise StoreError(f"{self.path} is not a matstore store (no schema_migrations table); "
                             f"create one with `matstore init`")
        if have < migrations.latest_version():
            raise StoreError(f"store {self.path} has schema version {have}, older than this "
                             f"matstore's {migrations.latest_version()}; open it once read-write "
                             f"(any writing command, or `matstore init {self.path}`) to upgrade")

    @contextmanager
    def transaction(self, guarded: bool = True, **kwargs) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN/COMMIT; any exception rolls the whole unit back."""
        with self.connect(write=True, **kwargs) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                rollback(con)
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """Run a read-only query and return a polars frame (guarded as user SQL: the store only)."""
        with self.connect(write=False, user_sql=True) as con:
            return frame(con, sql, params)

    def version(self) -> int:
        with self.connect(write=False) as con:
            return migrations.current_version(con)


def _check_init_target(path: str) -> None:
    """Refuse to make a store of a file that is not one: not DuckDB at all (a CSV, an empty
    file), or a DuckDB database with tables of its own and no matstore schema."""
    p = Path(path)
    if not p.exists():
        return
    if not p.is_file():
        raise StoreError(f"{path} is not a DuckDB/matstore store (not a file)")
    with open(p, "rb") as f:
        header = f.read(12)
    if header[8:12] != b"DUCK":      # DuckDB's magic bytes, after the header checksum
        raise StoreError(f"{path} is not a DuckDB/matstore store; nothing was changed")
    try:
        con = open_duckdb(str(p), read_only=True)
    except duckdb.Error:
        return   # in use by a writer (or unreadable): connect() reports what is wrong
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            ).fetchall()]
    finally:
        con.close()
    if tables and "schema_migrations" not in tables:
        raise StoreError(f"{path} is a DuckDB database with tables of its own "
                         f"({', '.join(sorted(tables)[:5])}{', ...' if len(tables) > 5 else ''}) "
                         f"and is not a matstore store; init makes a store only of a new file, "
                         f"an empty DuckDB database or a matstore store (nothing was changed)")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after a failure; when DuckDB has already ended the transaction (a full disk, a
    fatal error), the original error is the one the user needs, not "no transaction is active"."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    """A query's result as a polars frame (through the Arrow C stream: no copy per row, and no
    pyarrow import on the way)."""
    import polars as pl  # noqa: PLC0415

    rel = con.sql(sql, params=params or None)
    if rel is None:  # a statement with no result set (DDL/DML)
        return pl.DataFrame()
    return pl.DataFrame(rel)


def _columns(table: str, names: list[str]) -> str:
    """names as a quoted column list, each checked to be a column the package gives table (a
    frame from a worker or a file cannot name a column of its own into the INSERT)."""
    known = set(catalogue.package_columns(table))
    odd = [n for n in names if n not in known]
    if odd:
        raise StoreError(f"cannot append to {table}: no column(s) {catalogue.printable(odd, 200)} there")
    return ", ".join(catalogue.ident(n) for n in names)


def append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame | pa.Table) -> int:
    """Bulk-insert a frame by column name through Arrow (no row-by-row INSERT)."""
    arrow = frame if hasattr(frame, "num_rows") else frame.to_arrow()   # a pyarrow Table or polars
    if arrow.num_rows == 0:
        return 0
    cols = _columns(table, arrow.column_names)
    con.register("_matstore_append", arrow)
    try:
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _matstore_append')
    finally:
        con.unregister("_matstore_append")
    return arrow.num_rows


def append_new(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame | pa.Table,
               key: list[str], distinct: bool = True) -> int:
    """Append only rows whose key columns are not in the table yet (idempotent re-runs).

    distinct=False skips deduplicating the frame itself, for frames distinct by construction
    (a DISTINCT ON pass over feature vectors costs ~3x the insert)."""
    arrow = frame if hasattr(frame, "num_rows") else frame.to_arrow()   # a pyarrow Table or polars
    if arrow.num_rows == 0:
        return 0
    cols = _columns(table, arrow.column_names)
    _columns(table, key)
    on = " AND ".join(f"t.{catalogue.ident(k)} = s.{catalogue.ident(k)}" for k in key)
    pick = f"DISTINCT ON ({', '.join(key)}) " if distinct else ""
    con.register("_matstore_new", arrow)
    try:
        got = con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {pick}{cols} '
                          f'FROM _matstore_new s WHERE NOT EXISTS '
                          f'(SELECT 1 FROM "{table}" t WHERE {on})').fetchall()
        return int(got[0][0]) if got else 0
    finally:
        con.unregister("_matstore_new")


def next_id(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    return con.execute(f'SELECT coalesce(max("{column}"), 0) + 1 FROM "{table}"').fetchall()[0][0]
