"""A store's catalogue is checked before anything of the file is read.

What is compared (DuckDB's catalogue functions only: no view of the file is bound or run):
- `schema_migrations` must be a base table exactly as matstore creates it, before its rows are
  read (a view there would run the file's SQL on open);
- every table the migrations build (for the version the file records) must be a base table whose
  definition (columns, types, defaults, generated columns, constraints: DuckDB's normalized
  `CREATE TABLE` text) equals the one the migrations build, so no column name carries SQL and no
  default, generated column or check runs an expression of the file's;
- a name the package uses for a view (`sql/*.sql`) must not be a table in the file (the package's
  own view replaces or shadows the file's).
Objects under names of their own (a user's tables, views, macros) are allowed: matstore's SQL
never names them, and user SQL that does runs under the connection's guards.

Rows are bounded too, on every open that is not user SQL: no composition may hold more elements
or formula characters than ingest accepts (a 3,000,000-element list made `validate` allocate
15 GiB).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import duckdb

from . import migrations, views
from .connection import open_duckdb
from .errors import MatstoreError



class CatalogueError(MatstoreError, RuntimeError):
    """A file whose catalogue is not the one matstore's migrations build; the message names it."""


_SNAPSHOT = Path(__file__).with_name("catalogue.json")


def _live(version: int) -> tuple[tuple[tuple[str, str], ...], dict[str, tuple[str, ...]]]:
    """(table, normalized CREATE TABLE text) and table -> columns that the migrations up to
    version build, learned by running them in memory."""
    con = open_duckdb(":memory:")
    try:
        migrations.migrate(con, ":memory:", upto=version)
        tables = tuple(con.execute(
            "SELECT table_name, sql FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name").fetchall())
        rows = con.execute(
            "SELECT table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' GROUP BY table_name").fetchall()
        return tables, {t: tuple(cols) for t, cols in rows}
    finally:
        con.close()


def snapshot_key() -> str:
    """What the shipped snapshot must have been written for: every migration, every view
    (sql/*.sql) and DuckDB's version."""
    h = hashlib.sha256(duckdb.__version__.encode())
    for m in migrations.known_migrations():
        h.update(f"\0{m.version}\0{m.name}\0{m.sql()}".encode())
    for name, body in sorted(views.view_definitions().items()):
        h.update(f"\0{name}\0{body}".encode())
    return h.hexdigest()


@lru_cache(maxsize=None)
def _snapshot() -> dict:
    """The latest version's tables and columns and the views' normalized text, shipped
    (catalogue.json) so a process need not run every migration in memory and render every view
    to learn them (~0.25 CPU-s of every command's start); ignored (computed live)
    unless written for these migrations and this DuckDB. `python -m matstore.catalogue` rewrites it."""
    try:
        snap = json.loads(_SNAPSHOT.read_text())
    except (OSError, ValueError):
        return {}
    return snap if snap.get("key") == snapshot_key() else {}


@lru_cache(maxsize=None)
def expected_tables(version: int) -> tuple[tuple[str, str], ...]:
    """(table, normalized CREATE TABLE text) that the migrations up to version build."""
    snap = _snapshot()
    if snap and version == snap["version"]:
        return tuple((t, sql) for t, sql in snap["tables"])
    return _live(version)[0]


@lru_cache(maxsize=None)
def _package_columns(version: int) -> dict[str, tuple[str, ...]]:
    snap = _snapshot()
    if snap and version == snap["version"]:
        return {t: tuple(cols) for t, cols in snap["columns"].items()}
    return _live(version)[1]


@lru_cache(maxsize=1)
def package_view_sql() -> dict[str, str]:
    """views.normalized_view_sql(), from the shipped snapshot when it is current."""
    snap = _snapshot()
    return dict(snap["views"]) if snap else views.normalized_view_sql()


def write_snapshot(path: Path = _SNAPSHOT) -> None:
    """(Re)write the shipped snapshot from the migrations, run in memory."""
    version = migrations.latest_version()
    tables, columns = _live(version)
    path.write_text(json.dumps({"key": snapshot_key(), "version": version, "tables": tables,
                                "columns": columns, "views": views.normalized_view_sql()},
                               indent=1, sort_keys=True) + "\n")


def package_columns(table: str) -> tuple[str, ...]:
    """The columns matstore's migrations give table (latest version): identifiers for SQL come
    from here, never from a file's catalogue. CatalogueError for a table matstore does not build."""
    cols = _package_columns(migrations.latest_version()).get(table)
    if cols is None:
        raise CatalogueError(f"{printable(table, 80)} is not a matstore table")
    return cols


def package_tables() -> tuple[str, ...]:
    return tuple(sorted(_package_columns(migrations.latest_version())))


def ident(name: str) -> str:
    """A quoted SQL identifier (quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def _objects(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, str], set[str]]:
    tables = dict(con.execute(
        "SELECT table_name, sql FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main'").fetchall())
    views = {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary "
        "AND database_name = current_database() AND schema_name = 'main'").fetchall()}
    return tables, views


def _short(name: str) -> str:
    return printable(name, 80)


def printable(text, limit: int = 300) -> str:
    """text without control characters (ESC sequences from a received file never reach the
    terminal), cut to limit characters."""
    s = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return s if len(s) <= limit else s[:limit - 1] + "…"


def check(con: duckdb.DuckDBPyConnection, path: str) -> int | None:
    """The file's schema version after checking its catalogue (see the module docstring); None
    for a file without any table or view (a new store). CatalogueError names the first object that
    differs, before anything of the file is read."""
    from .views import view_definitions  # noqa: PLC0415

    tables, views = _objects(con)
    what = f"store {path}"
    if "schema_migrations" in views:
        raise CatalogueError(f"{what}: schema_migrations is a view, not matstore's table; "
                             f"refusing to read it (the file was not changed)")
    if "schema_migrations" not in tables:
        own = sorted(set(tables) | views)
        if own:
            raise CatalogueError(f"{what} has no schema_migrations table but holds "
                                 f"{', '.join(_short(t) for t in own[:5])}: not a matstore store")
        return None
    columns = con.execute(
        "SELECT list(column_name || ' ' || data_type ORDER BY column_index) FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = 'schema_migrations'").fetchall()[0][0]
    if columns != ["version INTEGER", "name VARCHAR", "applied_at TIMESTAMP"]:
        raise CatalogueError(f"{what}: schema_migrations is not matstore's table "
                             f"({_short(tables['schema_migrations'])}); refusing to read it")
    version = migrations.check_not_newer(con, path)
    for name, sql in expected_tables(version):
        if name in views:
            raise CatalogueError(f"{what}: {name} is a view, not matstore's table; refusing to "
                                 f"read it (the file was not changed)")
        if name not in tables:
            raise CatalogueError(f"{what} (schema version {version}) lacks the table {name}")
        if tables[name] != sql and name != "schema_migrations":   # its columns are checked above
            raise CatalogueError(f"{what}: table {name} is not the one matstore's migrations build "
                                 f"({_difference(con, name, version)}); refusing to read it "
                                 f"(the file was not changed)")
    for name in view_definitions():
        if name in tables:
            raise CatalogueError(f"{what}: {name} is a table, but matstore defines {name} as a view")
    return version


def _difference(con: duckdb.DuckDBPyConnection, table: str, version: int) -> str:
    """The first column that differs, for the error (names shown cut and without control chars)."""
    got = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = "
                      "current_database() AND schema_name = 'main' AND table_name = ? "
                      "ORDER BY column_index", [table]).fetchall()
    want = list(_package_columns_typed(version).get(table, ()))
    for col, dtype in got:
        if col not in {c for c, _ in want}:
            return f"table {table!r} has column {printable(col, 120)!r}, which they do not build"
        if (col, dtype) not in want:
            return f"table {table!r} has columns {printable(got, 400)}, they build {want}"
    for col, _ in want:
        if col not in {c for c, _ in got}:
            return f"table {table!r} lacks column {col!r}"
    return "defaults, generated columns or constraints differ"


@lru_cache(maxsize=None)
def _package_columns_typed(version: int) -> dict[str, tuple[tuple[str, str], ...]]:
    con = open_duckdb(":memory:")
    try:
        migrations.migrate(con, ":memory:", upto=version)
        rows = con.execute(
            "SELECT table_name, list(struct_pack(c := column_name, t := data_type) ORDER BY column_index) "
            "FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
            "GROUP BY table_name").fetchall()
        return {t: tuple((x["c"], x["t"]) for x in cols) for t, cols in rows}
    finally:
        con.close()


def check_rows(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Refuse a store whose compositions exceed what ingest accepts (element list, formula
    length), before a reader allocates per element."""
    from .compositions.parse import MAX_ELEMENTS, MAX_FORMULA_CHARS  # noqa: PLC0415

    bad = con.execute(
        "SELECT count(*), min(composition_id) FROM compositions "
        "WHERE len(elements) > ? OR len(counts) <> len(elements) OR length(formula) > ?",
        [MAX_ELEMENTS, MAX_FORMULA_CHARS]).fetchall()[0]
    if bad[0]:
        raise CatalogueError(
            f"store {path}: {bad[0]} composition(s) (first id {bad[1]}) hold more than "
            f"{MAX_ELEMENTS} elements or {MAX_FORMULA_CHARS} formula characters, which matstore "
            f"never writes; remove them with `matstore query --write \"DELETE FROM compositions "
            f"WHERE len(elements) > {MAX_ELEMENTS} OR length(formula) > {MAX_FORMULA_CHARS}\"`")


if __name__ == "__main__":   # python -m matstore.catalogue: after adding a migration
    write_snapshot()
    print(f"wrote {_SNAPSHOT}")
