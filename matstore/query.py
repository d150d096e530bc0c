"""User SQL against the store: read-only by default, so a stray DDL/DML cannot change it.

Every piece of SQL a user hands matstore (`query`, `--where`, `train --on`) runs on a connection
with DuckDB's external-access guards on (store.guard): no COPY TO, EXPORT, ATTACH, reading other
files or installing extensions, even with --write. Conditions and selections are checked to be
one expression / one SELECT before anything runs, and are evaluated on a read-only connection:
a write connection only ever receives the composition ids they select.
"""

from __future__ import annotations

import duckdb
import polars as pl

from .errors import MatstoreError
from .store import Store, frame


class QueryError(MatstoreError, ValueError):
    """User SQL (a query, --where, --on) that matstore refuses; the message names the option."""


def run_query(store: Store, sql: str, write: bool = False) -> pl.DataFrame:
    """Run sql; without write=True the connection is read-only and DuckDB refuses changes.
    Either way the store's file is the only file the SQL can reach."""
    with (store.transaction(guarded=True) if write else store.connect(write=False, guarded=True)) as con:
        statements = con.extract_statements(sql)
        if not statements:
            raise QueryError("query: no SQL statement given")
        for stmt in statements[:-1]:
            con.execute(stmt.query).fetchall()
        return frame(con, statements[-1].query)


def _one_select(sql: str, what: str) -> None:
    """Refuse sql unless it parses as exactly one SELECT statement (no `;`-chained payloads)."""
    con = duckdb.connect(":memory:")  # parsing only: nothing is executed
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"{what} does not parse: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise QueryError(f"{what} must be a single SQL condition; it parses as {len(statements)} "
                         f"statement(s) ({kinds})")


def check_condition(where: str, option: str = "--where") -> str:
    """where, if it is exactly one SQL condition on compositions (alias c); else QueryError naming
    the option. The caller still evaluates it only on a guarded read-only connection."""
    if not where or not where.strip():
        raise QueryError(f"{option}: empty condition")
    _one_select(f"SELECT c.composition_id FROM compositions c WHERE ({where})",
                f"{option} {where!r}")
    return where


def check_selection(selection: str, option: str = "--on") -> str:
    """selection (a query returning composition_id), if it is exactly one SELECT; else
    QueryError naming the option. Trailing `;` and blanks are dropped."""
    sel = selection.strip().rstrip(";").strip()
    if not sel:
        raise QueryError(f"{option}: empty selection")
    _one_select(sel, f"{option} {selection.strip()!r}")
    _one_select(f"SELECT DISTINCT composition_id FROM ({sel}) s", f"{option} {selection.strip()!r}")
    return sel
