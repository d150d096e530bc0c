"""`matstore export parquet DIR`: every table as Parquet, readable without matstore.

Layout: DIR/<table>/data.parquet, except `generated`, which is hive-partitioned by run
(DIR/generated/run_id=N/*.parquet) so one run can be read or shared alone. DIR/manifest.json
records the schema version, and per table the row count and the checksum below, so a reader can
check what it got. The export is written to a temporary sibling folder and renamed into place:
an interrupted export leaves no half-written DIR (at most a `.DIR.partial-*` sibling).

`--overwrite` replaces a previous export and nothing else: DIR must hold a manifest.json of format
"matstore-parquet-export", and only the table folders it lists (Parquet files only) and the
manifest are replaced; other files in DIR stay. A DIR that holds the store file is always refused.

Views: DIR/views/<view>.sql holds each view's SQL (a SELECT over the tables by name, its question
as the header comment), and manifest.json lists them under "views" in dependency order, with the
tables and views each reads. Only views whose tables are all exported are written; each is
checked by rebuilding it over the exported Parquet files. To rebuild them without matstore, make
each table a view of its Parquet files (manifest "tables": "files", "hive_partitioning"), then run
the views in order (DuckDB: CREATE VIEW <name> AS <sql>; polars: pl.SQLContext; Spark:
createOrReplaceTempView + spark.sql). The manifest also carries every table's and column's comment.

Read back with plain DuckDB:  SELECT * FROM read_parquet('DIR/generated/**/*.parquet', hive_partitioning=true)
or polars:                    pl.read_parquet('DIR/compositions/*.parquet')
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from . import migrations
from .catalogue import ident, package_columns, package_tables
from .connection import open_duckdb
from .outpaths import check as check_output
from .store import Store, view_question
from .views import package_views, referenced_relations
from .errors import MatstoreError

PARTITION_BY = {"generated": "run_id"}
FORMAT = "matstore-parquet-export"   # manifest.json's "format": what --overwrite may replace
MANIFEST = "manifest.json"
VIEWS = "views"                      # DIR/views/<view>.sql
REBUILD = ("for each table: CREATE VIEW <table> AS SELECT * FROM read_parquet('<files>', "
           "hive_partitioning = <hive_partitioning>, union_by_name = true); then for each view, in "
           "order: CREATE VIEW <name> AS <the text of its sql file>")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExportError(MatstoreError, RuntimeError):
    """An export that cannot be written as asked; the message says why."""


def base_tables(con: duckdb.DuckDBPyConnection, schema: str = "main", catalog: str | None = None) -> list[str]:
    where = "table_schema = ? AND table_type = 'BASE TABLE'"
    params = [schema]
    if catalog:
        where += " AND table_catalog = ?"
        params.append(catalog)
    return [r[0] for r in con.execute(
        f"SELECT table_name FROM information_schema.tables WHERE {where} ORDER BY table_name",
        params).fetchall()]


def checksum(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str] | None = None, *,
             table: str | None = None) -> tuple[int, int]:
    """(rows, order-independent checksum) of a matstore table, or of relation (e.g. its
    parquet_relation) holding that table's rows; table defaults to relation's quoted name.

    The columns are the caller's (constants of its own) or the package's
    (catalogue.package_columns), never names read from the file.
    Values are compared as text in column-name order, so a table and its Parquet copy agree even
    where Parquet changes a type's width (hive partition keys read back as BIGINT, JSON as VARCHAR).
    """
    cols = sorted(columns or package_columns(table or relation.strip('"')))
    packed = ", ".join(f"{ident(c)} := {ident(c)}::VARCHAR" for c in cols)
    rows, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash(struct_pack({packed}))::HUGEINT) % 18446744073709551557, 0) "
        f"FROM {relation}").fetchall()[0]
    return int(rows), int(total)


def export_parquet(store: Store, out_dir: str | Path, overwrite: bool = False,
                   tables: list[str] | None = None) -> pl.DataFrame:
    """Write the store's tables under out_dir; returns table, rows, checksum, path per table.

    overwrite replaces a previous export only: its table folders and manifest.json (anything
    else in out_dir stays). A folder that is not a matstore export, or that holds the store
    itself, is refused, whatever overwrite says."""
    # never the store, its .wal/.lock/.tmp, nor a path resolving to them; a writable folder
    check_output(out_dir, overwrite=True, folder=True, option="export")
    out = Path(out_dir).resolve()
    src = Path(store.path).resolve()
    if out == src or out in src.parents:
        raise ExportError(f"export: {out} holds the store {src} itself; export to a folder "
                          f"outside it (nothing was written or removed)")
    previous = None                       # table folders of the export being replaced
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise ExportError(f"export: {out} exists and is not an empty folder (use --overwrite "
                              f"to replace a previous matstore export there)")
        previous = previous_export(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    summary = []
    try:
        with store.connect(write=False, write_dirs=[str(tmp)]) as con:
            have = [t for t in base_tables(con) if t in package_tables()]   # not a user's own tables
            wanted = tables or have
            unknown = sorted(set(wanted) - set(have))
            if unknown:
                raise ExportError(f"export: no table(s) {', '.join(unknown)} in {store.path} matstore exports "
                                  f"(a table of your own: `matstore query \"SELECT * FROM t\" --parquet FILE`)")
            odd = [t for t in wanted if not _TABLE_NAME.fullmatch(t)]
            if odd:   # a received store's names become folder names and SQL: plain ones only
                raise ExportError(f"export: table name(s) {odd!r} in {store.path} are not plain "
                                  f"identifiers; export the other tables with --table")
            if VIEWS in wanted:
                raise ExportError(f"export: a table named {VIEWS!r} would collide with the export's "
                                  f"{VIEWS}/ folder of view SQL; export the other tables with --table")
            version = migrations.current_version(con)
            comments = table_comments(con, wanted)
            for t in wanted:
                target = tmp / t
                part = PARTITION_BY.get(t)
                if part and con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] == 0:
                    part = None  # nothing to partition: one empty file keeps the columns
                if part:
                    con.execute(f"COPY (SELECT * FROM \"{t}\") TO '{_q(target)}' "
                                f"(FORMAT parquet, PARTITION_BY ({part}))").fetchall()
                else:
                    target.mkdir()
                    con.execute(f"COPY \"{t}\" TO '{_q(target / 'data.parquet')}' (FORMAT parquet)").fetchall()
                rows, total = checksum(con, f'"{t}"')
                summary.append({"table": t, "rows": rows, "checksum": str(total),
                                "partitioned_by": part, "path": str(out / t)})
        views = write_views(tmp, wanted)
        manifest = {"format": FORMAT, "schema_version": version,
                    "exported_at": datetime.now().isoformat(timespec="seconds"),
                    "source": str(src),
                    "tables": {s["table"]: {**{k: s[k] for k in ("rows", "checksum", "partitioned_by")},
                                            **_files(s["table"]), **comments[s["table"]]}
                               for s in summary},
                    "views": views, "rebuild": REBUILD}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if previous is None:
            if out.exists():
                out.rmdir()               # empty (checked above)
            tmp.rename(out)
        else:
            _replace(out, tmp, previous)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return pl.DataFrame(summary, schema={"table": pl.String, "rows": pl.Int64, "checksum": pl.String,
                                         "partitioned_by": pl.String, "path": pl.String})


def table_comments(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, dict]:
    """table -> {"comment": ..., "columns": {column: comment}} from the store's COMMENT ONs."""
    out = {t: {"comment": None, "columns": {}} for t in tables}
    # the store's catalog (a read connection's search path makes current_database() 'temp')
    mine = "database_name NOT IN ('temp', 'system') AND schema_name = 'main'"
    for t, comment in con.execute(f"SELECT table_name, comment FROM duckdb_tables() WHERE {mine}").fetchall():
        if t in out:
            out[t]["comment"] = comment
    for t, col, comment in con.execute(
            f"SELECT table_name, column_name, comment FROM duckdb_columns() WHERE {mine} "
            f"ORDER BY table_name, column_index").fetchall():
        if t in out:
            out[t]["columns"][col] = comment
    return out


def _files(table: str) -> dict:
    """Where a table's Parquet files are, relative to the export folder, and how to read them."""
    return {"files": f"{table}/**/*.parquet", "hive_partitioning": table in PARTITION_BY}


def write_views(tmp: Path, tables: list[str]) -> list[dict]:
    """Write views/<name>.sql for every package view that rebuilds over the exported tables
    (checked: each is created in a fresh in-memory DuckDB over the Parquet files just written);
    returns the manifest entries in dependency order (a view after every view it reads)."""
    con = open_duckdb(write_dirs=[str(tmp)])
    try:
        for t in tables:
            con.execute(f'CREATE VIEW "{t}" AS SELECT * FROM {parquet_relation(tmp, t)}')
        # the package's views (never the store's) in declared dependency order; a view that reads
        # a table or view not exported does not build and is left out
        made = [v for v in package_views() if _try_view(con, v.name, v.body)]
    finally:
        con.close()
    if not made:
        return []
    (tmp / VIEWS).mkdir()
    entries, known = [], set(tables)
    for v in made:
        (tmp / VIEWS / f"{v.name}.sql").write_text(v.body + "\n")
        entries.append({"name": v.name, "sql": f"{VIEWS}/{v.name}.sql", "question": view_question(v.body),
                        "reads": sorted(referenced_relations(v.body) & known)})
        known.add(v.name)
    return entries


def _try_view(con: duckdb.DuckDBPyConnection, name: str, body: str) -> bool:
    """Whether the view builds over what is there (a missing table or view is the usual no)."""
    try:
        con.execute(f'CREATE VIEW "{name}" AS\n{body}')
        return True
    except duckdb.Error:
        return False


def previous_export(out: Path) -> list[str]:
    """The table folders a previous matstore export wrote in out (checked: only Parquet files),
    or ExportError when out is not such an export: --overwrite removes nothing else."""
    refuse = (f"; --overwrite only replaces a previous matstore export (nothing was removed: "
              f"choose another folder, or remove it yourself)")
    if not out.is_dir():
        raise ExportError(f"export: {out} exists and is not a folder{refuse}")
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError(f"export: {out} is not a matstore export (no {MANIFEST} of format "
                          f"{FORMAT!r}){refuse}")
    names = manifest.get("tables")
    if not isinstance(names, dict) or not all(isinstance(t, str) and _TABLE_NAME.fullmatch(t)
                                              for t in names):
        raise ExportError(f"export: {out / MANIFEST} lists tables that are not plain names{refuse}")
    views = manifest.get("views") or []
    if views:     # its views/ folder: .sql files only, like the tables' Parquet files
        folder = out / VIEWS
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ExportError(f"export: {folder} is not a folder of view SQL{refuse}")
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_symlink() or not path.is_file() or path.suffix != ".sql" or path.parent != folder:
                raise ExportError(f"export: {path} was not written by a matstore export{refuse}")
    for t in names:
        folder = out / t
        if not folder.exists() and not folder.is_symlink():
            continue
        if folder.is_symlink() or not folder.is_dir():
            raise ExportError(f"export: {folder} is not a folder of Parquet files{refuse}")
        for path in folder.rglob("*"):
            if path.is_symlink() or not (path.is_dir() or (path.is_file() and path.suffix == ".parquet")):
                raise ExportError(f"export: {path} was not written by a matstore export{refuse}")
    return list(names) + ([VIEWS] if views else [])


def _replace(out: Path, tmp: Path, previous: list[str]) -> None:
    """Swap the previous export's table folders and manifest for the new ones in tmp."""
    new = [p.name for p in tmp.iterdir() if p.name != MANIFEST]
    foreign = [n for n in new if n not in previous and (out / n).exists()]
    if foreign:
        raise ExportError(f"export: {out} holds {', '.join(foreign)}, not part of its previous "
                          f"export; nothing was removed")
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
    try:
        for t in previous:
            if (out / t).exists():
                (out / t).rename(old / t)
        for n in new:
            (tmp / n).rename(out / n)
        (tmp / MANIFEST).replace(out / MANIFEST)   # last: the manifest describes what is there
        tmp.rmdir()
    finally:
        shutil.rmtree(old, ignore_errors=True)


def parquet_relation(out_dir: str | Path, table: str) -> str:
    """The DuckDB table function that reads one exported table back (no matstore needed)."""
    glob = Path(out_dir) / table / "**" / "*.parquet"
    hive = "true" if table in PARTITION_BY else "false"
    return f"read_parquet('{_q(glob)}', hive_partitioning = {hive}, union_by_name = true)"


def _q(p: Path | str) -> str:
    return str(p).replace("'", "''")
