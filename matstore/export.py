"""`matstore export parquet DIR`: every table as Parquet, readable without matstore.

Layout: DIR/<table>/data.parquet, except `generated`, which is hive-partitioned by run
(DIR/generated/run_id=N/*.parquet) so one run can be read or shared alone. DIR/manifest.json
records the schema version, and per table the row count and the checksum below, so a reader can
check what it got. The export is written to a temporary sibling folder and renamed into place:
an interrupted export leaves no half-written DIR.

Read back with plain DuckDB:  SELECT * FROM read_parquet('DIR/generated/**/*.parquet', hive_partitioning=true)
or polars:                    pl.read_parquet('DIR/compositions/*.parquet')
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from . import migrations
from .store import Store
from .errors import MatstoreError

PARTITION_BY = {"generated": "run_id"}


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


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [d[0] for d in con.sql(f"SELECT * FROM {relation} LIMIT 0").description]


def checksum(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str] | None = None) -> tuple[int, int]:
    """(rows, order-independent checksum) of a table/view/table function over the given columns.

    Values are compared as text in column-name order, so a table and its Parquet copy agree even
    where Parquet changes a type's width (hive partition keys read back as BIGINT, JSON as VARCHAR).
    """
    cols = sorted(columns or columns_of(con, relation))
    packed = ", ".join(f'"{c}" := "{c}"::VARCHAR' for c in cols)
    rows, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash(struct_pack({packed}))::HUGEINT) % 18446744073709551557, 0) "
        f"FROM {relation}").fetchall()[0]
    return int(rows), int(total)


def export_parquet(store: Store, out_dir: str | Path, overwrite: bool = False,
                   tables: list[str] | None = None) -> pl.DataFrame:
    """Write the store's tables under out_dir; returns table, rows, checksum, path per table."""
    out = Path(out_dir).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ExportError(f"export: {out} exists and is not an empty folder (use --overwrite to replace it)")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    summary = []
    try:
        with store.connect(write=False) as con:
            have = base_tables(con)
            wanted = tables or have
            unknown = sorted(set(wanted) - set(have))
            if unknown:
                raise ExportError(f"export: no table(s) {', '.join(unknown)} in {store.path}")
            version = migrations.current_version(con)
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
        manifest = {"format": "matstore-parquet-export", "schema_version": version,
                    "exported_at": datetime.now().isoformat(timespec="seconds"),
                    "source": str(Path(store.path).resolve()),
                    "tables": {s["table"]: {k: s[k] for k in ("rows", "checksum", "partitioned_by")}
                               for s in summary}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return pl.DataFrame(summary, schema={"table": pl.String, "rows": pl.Int64, "checksum": pl.String,
                                         "partitioned_by": pl.String, "path": pl.String})


def parquet_relation(out_dir: str | Path, table: str) -> str:
    """The DuckDB table function that reads one exported table back (no matstore needed)."""
    glob = Path(out_dir) / table / "**" / "*.parquet"
    hive = "true" if table in PARTITION_BY else "false"
    return f"read_parquet('{_q(glob)}', hive_partitioning = {hive}, union_by_name = true)"


def _q(p: Path | str) -> str:
    return str(p).replace("'", "''")
