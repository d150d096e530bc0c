"""Showing result frames: data on stdout, everything else (titles of files written, hints) on stderr.

Formats: `table` (rich), `records` (one `column: value` line per field, records separated, like
psql's \\x), `csv`, `json`, or a Parquet file. The default, `auto`, is the table when it fits the
width of stdout (80 columns when stdout is not a terminal) and records otherwise, so no header is
ever cut to `inge… sour…`. Several frames (e.g. `info`) come out as sections of one document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contextvars import ContextVar
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import outpaths

if TYPE_CHECKING:  # frames come from the caller; `matstore --help` never loads polars
    import polars as pl

FORMATS = ("auto", "table", "records", "csv", "json")
DEFAULT_LIMIT = 50


def stdout_console() -> Console:
    """Where data goes: stdout (rich sizes it to the terminal, 80 columns when piped)."""
    return Console(soft_wrap=False, emoji=False)   # data is text: ":a:" stays ":a:"


def stderr_console() -> Console:
    """Where status, progress and hints go."""
    return Console(stderr=True, emoji=False, soft_wrap=True)   # whole lines: greps and paths survive


def _cell(v) -> str:
    """A value as shown in a table or records: control characters (an ESC sequence in a received
    store's model name, ingest URI or comment) become `?`, so they never reach the terminal."""
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.6g}"
    return _clean(str(v))


def _clean(s: str) -> str:
    return s if s.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in s)


def _table(df: pl.DataFrame, title: str | None, max_rows: int) -> Table:
    table = Table(title=escape(title) if title else None, show_lines=False)
    for name, dtype in zip(df.columns, df.dtypes):
        table.add_column(escape(_clean(name)), justify="right" if dtype.is_numeric() else "left")
    for row in df.head(max_rows).iter_rows():
        table.add_row(*[escape(_cell(v)) for v in row])
    return table


def fits(df: pl.DataFrame, console: Console, max_rows: int = DEFAULT_LIMIT) -> bool:
    """Whether df's table shows every header and cell in full within the console's width."""
    wide = console.options.update_width(10**6)  # measured unconstrained, then compared
    return console.measure(_table(df, None, max_rows), options=wide).maximum <= console.width


def print_table(df: pl.DataFrame, title: str | None = None, max_rows: int = DEFAULT_LIMIT,
                console: Console | None = None) -> None:
    """A rich table, as wide as its cells (wider than the terminal if it must: the user asked for
    a table; print_frame's `auto` gives records instead), so no header or cell is cut."""
    console = console or stdout_console()
    table = _table(df, title, max_rows)
    need = console.measure(table, options=console.options.update_width(10**6)).maximum
    if need > console.width:  # console.print(width=) is capped at the console's own width
        console = Console(file=console.file, width=need, force_terminal=console.is_terminal,
                          soft_wrap=False, emoji=False)
    console.print(table)
    _more(df, max_rows)


def print_records(df: pl.DataFrame, title: str | None = None, max_rows: int = DEFAULT_LIMIT,
                  console: Console | None = None) -> None:
    """One `column: value` line per field, each record under a `-[ RECORD n ]-` line: every
    column name and value in full, whatever the width."""
    console = console or stdout_console()
    width = max((len(c) for c in df.columns), default=0)
    names = [_clean(c) for c in df.columns]
    lines = [f"== {title} ==" if title else None]
    for i, row in enumerate(df.head(max_rows).iter_rows(), 1):
        lines.append(f"-[ RECORD {i} ]" + "-" * max(0, width - 8))
        lines += [f"{name.ljust(width)} | {_cell(v)}" for name, v in zip(names, row)]
    if df.height == 0:
        lines.append("(no rows)")
    console.print("\n".join(x for x in lines if x is not None), markup=False, highlight=False,
                  soft_wrap=True)
    _more(df, max_rows)


def _more(df: pl.DataFrame, max_rows: int) -> None:
    if df.height > max_rows:
        stderr_console().print(f"[dim]{df.height - max_rows} more rows not shown ({df.height} in "
                               f"all; use --limit-rows, --csv, --json or --parquet for all)[/dim]")


def _clean_lines(text: str) -> str:
    return "\n".join(_clean(line) for line in text.split("\n"))


def _flat(df: pl.DataFrame) -> pl.DataFrame:
    """Lists joined by `;` so that CSV can hold them."""
    import polars as pl  # noqa: PLC0415

    return df.with_columns([pl.col(c).cast(pl.List(pl.Utf8)).list.join(";")
                            for c, t in zip(df.columns, df.dtypes) if isinstance(t, pl.List)])


def print_frame(df: pl.DataFrame, fmt: str = "auto", title: str | None = None,
                max_rows: int = DEFAULT_LIMIT, console: Console | None = None) -> None:
    """df on stdout as a table when it fits, else as records (fmt 'auto'), or as fmt says."""
    console = console or stdout_console()
    if fmt == "auto":
        fmt = "table" if fits(df, console, max_rows) else "records"
        if fmt == "records" and console.is_terminal:
            stderr_console().print(f"[dim]{len(df.columns)} columns do not fit {console.width} "
                                   f"columns: one record per block (--table, --csv or --json to "
                                   f"choose)[/dim]")
    if fmt == "table":
        print_table(df, title, max_rows, console)
    elif fmt == "records":
        print_records(df, title, max_rows, console)
    elif fmt == "csv":
        text = _flat(df).write_csv()
        # CSV keeps every byte for a pipe; on a terminal, control characters are shown as `?`
        console.file.write(_clean_lines(text) if console.is_terminal else text)
    elif fmt == "json":
        console.file.write(df.write_json() + "\n")
    else:
        raise ValueError(f"unknown output format {fmt!r}")


# `--overwrite` of the command being run (cli.options.output_options sets it for that command)
OVERWRITE: ContextVar[bool] = ContextVar("matstore_overwrite", default=False)


def write_parquet(df: pl.DataFrame, path: str, overwrite: bool | None = None) -> None:
    """df to the Parquet file path, checked first (outpaths.check: never a store or its side
    files; an existing file only with overwrite); written beside it and renamed into place."""
    p = outpaths.check(path, overwrite=OVERWRITE.get() if overwrite is None else overwrite,
                       option="--parquet")
    tmp = p.with_name(f".{p.name}.partial")
    try:
        df.write_parquet(tmp)
        tmp.replace(p)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise outpaths.OutputError(f"--parquet {str(path)[:200]!r}: cannot write: {e.strerror or e}") from None


def emit(df: pl.DataFrame, fmt: str | None = "auto", parquet: str | None = None,
         title: str | None = None, max_rows: int = DEFAULT_LIMIT, console: Console | None = None) -> None:
    """Write df in the chosen format; --parquet FILE writes the file and says so on stderr."""
    if parquet:
        write_parquet(df, parquet)
        stderr_console().print(f"wrote {df.height} rows to {parquet}")
    else:
        print_frame(df, fmt or "auto", title, max_rows, console)


def emit_sections(sections: dict[str, pl.DataFrame], fmt: str | None = "auto",
                  parquet: str | None = None, max_rows: int = DEFAULT_LIMIT,
                  console: Console | None = None, meta: dict | None = None) -> None:
    """Several frames as one document: titled tables/records; one JSON object {meta..., title:
    [rows]}; CSV blocks each after a `# title` line; Parquet: FILE's stem + `-title` per frame."""
    console = console or stdout_console()
    fmt = fmt or "auto"
    if parquet:
        p = Path(parquet)
        for title, df in sections.items():
            emit(df, parquet=str(p.with_name(f"{p.stem}-{title.replace(' ', '_')}{p.suffix or '.parquet'}")))
    elif fmt == "json":
        doc = dict(meta or {})
        doc.update({title: json.loads(df.write_json()) for title, df in sections.items()})
        console.file.write(json.dumps(doc, default=str) + "\n")
    elif fmt == "csv":
        for i, (title, df) in enumerate(sections.items()):
            console.file.write(("\n" if i else "") + f"# {title}\n" + _flat(df).write_csv())
    else:
        for title, df in sections.items():
            print_frame(df, fmt, title, max_rows, console)


def json_summary(text: str | None, width: int = 60) -> str:
    """A metrics JSON object as one short cell: its scalar fields as `key=value`, a nested
    object as `name: key=value ...` (test split first; `history`, lists, and `val` where there
    is a `test`, left out), cut to `width`. The full JSON stays one --json away."""
    if text is None:
        return ""
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        obj = None
    if not isinstance(obj, dict):
        s = str(text)
    else:
        def scalar(k, v):
            if isinstance(v, bool) or v is None or isinstance(v, str):
                return f"{k}={v}"
            return f"{k}={v:.4g}" if isinstance(v, (int, float)) else None

        keys = sorted(obj, key=lambda k: k != "test")
        parts = []
        for k in keys:
            v = obj[k]
            if k == "history" or (k == "val" and "test" in obj):
                continue
            if isinstance(v, dict):
                inner = [x for x in (scalar(a, b) for a, b in v.items()) if x]
                if inner:
                    parts.append(f"{k}: " + " ".join(inner))
            elif (x := scalar(k, v)) is not None:
                parts.append(x)
        s = "; ".join(parts)
    return s if len(s) <= width else s[:width - 1] + "…"
