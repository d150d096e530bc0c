"""Showing a result frame: rich table on a terminal, or CSV / JSON / Parquet."""

from __future__ import annotations

import sys

import polars as pl
from rich.console import Console
from rich.table import Table


def print_table(df: pl.DataFrame, title: str | None = None, max_rows: int = 50,
                console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=title, show_lines=False)
    for name, dtype in zip(df.columns, df.dtypes):
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
    for row in df.head(max_rows).iter_rows():
        table.add_row(*[_cell(v) for v in row])
    console.print(table)
    if df.height > max_rows:
        console.print(f"[dim]{df.height - max_rows} more rows not shown "
                      f"({df.height} in all; use --csv, --json or --parquet for all)[/dim]")


def _cell(v) -> str:
    if v is None:
        return "[dim]null[/dim]"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def emit(df: pl.DataFrame, fmt: str = "table", parquet: str | None = None,
         title: str | None = None, max_rows: int = 50) -> None:
    """Write df in the chosen format; --parquet FILE writes a file and says so."""
    if parquet:
        df.write_parquet(parquet)
        Console(stderr=True).print(f"wrote {df.height} rows to {parquet}")
    elif fmt == "csv":
        flat = df.with_columns([pl.col(c).cast(pl.List(pl.Utf8)).list.join(";")
                                for c, t in zip(df.columns, df.dtypes) if isinstance(t, pl.List)])
        sys.stdout.write(flat.write_csv())
    elif fmt == "json":
        sys.stdout.write(df.write_json() + "\n")
    else:
        print_table(df, title=title, max_rows=max_rows)
