"""`csv`: any CSV/TSV/Parquet/JSON table with a formula column and --prop name=column[:unit]."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from . import (Chunk, PropSpec, Source, SourceError, check_kind, check_source_name, default_id_prefix,
               file_sha256, pick_column,
               read_table, resolve_props, table_chunks)

FORMULA_COLUMNS = ("formula", "composition", "pretty_formula", "formula_pretty", "reduced_formula",
                   "name", "chemical_formula", "sum_formula")


@dataclass
class TableSource(Source):
    """A whole table read up front (files are small next to the store); written in chunks."""

    df: pl.DataFrame | None = None
    formula_col: str = "formula"
    id_col: str | None = None
    props: tuple[PropSpec, ...] = ()
    id_prefix: str | None = None    # default ids without id_col: see sources.default_id_prefix

    def chunks(self, cursor: str | None = None) -> Iterator[Chunk]:
        yield from table_chunks(self.df, path=self.uri, formula_col=self.formula_col,
                                id_col=self.id_col, props=list(self.props), cursor=cursor,
                                id_prefix=self.id_prefix)


def as_specs(props) -> list[PropSpec]:
    return [p if isinstance(p, PropSpec) else PropSpec.parse(p) for p in (props or [])]


def open_table(kind: str, file, *, formula_col=None, id_col=None, props=None, limit=None,
               formula_candidates=FORMULA_COLUMNS, id_candidates=(), default_props=None) -> TableSource:
    """Read and check a table file: columns exist, properties resolved. Raises SourceError."""
    if not file:
        raise SourceError(f"source {kind} needs --file")
    given = as_specs(props)  # option errors before touching the file
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SourceError(f"{kind}: --limit must be a positive number of rows, got {limit!r}")
    path = str(Path(file).resolve())
    df = read_table(path)
    fcol = pick_column(df, formula_col, formula_candidates, "formula", path)
    if fcol is None:
        raise SourceError(f"{path}: no formula column (looked for {', '.join(formula_candidates)}; "
                          f"name it with --formula-col)")
    icol = pick_column(df, id_col, id_candidates, "id", path)
    specs = given or list(default_props or [])
    specs = resolve_props(df, specs, path, fcol, icol)
    if limit is not None:
        df = df.head(limit)
    if df.height == 0:  # as the JSON reader: refuse before an ingest is recorded
        raise SourceError(f"{path}: no data rows to ingest")
    sha = file_sha256(path)  # in params: resume only an ingest of these same bytes
    params = {"formula_col": fcol, "id_col": icol, "limit": limit,
              "props": [f"{p.name}={p.column}:{p.unit or ''}" for p in specs], "sha256": sha}
    return TableSource(name=kind, uri=path, params=params, units={p.name: p.unit for p in specs},
                       total=df.height, df=df, formula_col=fcol, id_col=icol, props=tuple(specs),
                       id_prefix=None if icol else default_id_prefix(sha))


class CsvSource:
    @staticmethod
    def open(file=None, formula_col=None, id_col=None, props=None, limit=None, source_name=None,
             kind=None, method=None) -> TableSource:
        """A table file. source_name names where its values come from (default 'csv'), kind says
        whether they are DFT (method: level of theory) or experiment (default: unknown)."""
        name = "csv" if source_name is None else check_source_name(source_name)
        kind, method = check_kind(kind, method)
        src = open_table(name, file, formula_col=formula_col, id_col=id_col, props=props, limit=limit)
        src.kind, src.method = kind, method
        if kind is not None:  # part of the ingest's identity (resume matches on params)
            src.params = {**src.params, "kind": kind, "method": method}
        return src
