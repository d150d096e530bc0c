"""User SQL against the store: read-only by default, so a stray DDL/DML cannot change it."""

from __future__ import annotations

import polars as pl

from .store import Store, frame


def run_query(store: Store, sql: str, write: bool = False) -> pl.DataFrame:
    """Run sql; without write=True the connection is read-only and DuckDB refuses changes."""
    with (store.transaction() if write else store.connect(write=False)) as con:
        statements = con.extract_statements(sql)
        if not statements:
            raise ValueError("query: no SQL statement given")
        for stmt in statements[:-1]:
            con.execute(stmt.query).fetchall()
        return frame(con, statements[-1].query)
