"""User SQL against the store: read-only by default, so a stray DDL/DML cannot change it.

`matstore query` runs on a connection opened by connection.open_duckdb (DuckDB's
external-access guards as configuration): no COPY TO, EXPORT, ATTACH, reading other files or
installing extensions, even with --write. Options that select compositions (`--where`, `--on`,
`--base`, `--candidates-from`, `--pool`) are matstore.selection's.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl

from .errors import MatstoreError
from .store import Store, frame


class QueryError(MatstoreError, ValueError):
    """User SQL (a query, --where, --on) that matstore refuses; the message names the option."""


def parse_params(pairs) -> dict[str, str]:
    """`-p NAME=VALUE` options as DuckDB named parameters {NAME: VALUE} (used as `$NAME`).
    Values stay strings: DuckDB casts them where the SQL compares them with numbers, and a value
    is only ever bound, never pasted into the SQL."""
    params: dict[str, str] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        name = name.strip().lstrip("$")
        if not sep or not name.isidentifier():
            raise QueryError(f"-p/--param {pair!r}: expected NAME=VALUE, used in the SQL as $NAME")
        if name in params:
            raise QueryError(f"-p/--param {name} given twice")
        params[name] = value
    return params


def _uses(sql: str, name: str) -> bool:
    return re.search(rf"\${re.escape(name)}\b", sql) is not None


def friendly(e: duckdb.Error, what: str = "query") -> QueryError:
    """DuckDB's common errors as one line that says what to do (the CLI shows these; Python
    callers of run_query get DuckDB's own exception)."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "read-only mode" in msg or 'Only TEMPORARY table names can use the "temp"' in msg:
        return QueryError(f"{what}: this statement changes the store: add --write ({msg})")
    m = re.search(r"Table with name (\S+) does not exist", msg)
    if m:
        return QueryError(f"{what}: no table or view named {m.group(1)}; `matstore info` lists the "
                          f"tables, `matstore query \"SHOW ALL TABLES\"` also the views")
    m = re.search(r'Referenced column (\S+) not found', msg)
    if m:
        return QueryError(f"{what}: no column {m.group(1)} there; `matstore query \"DESCRIBE "
                          f"<table>\"` lists a table's columns, `matstore info` the tables ({msg})")
    m = re.search(r"Values were not provided for the following (?:prepared statement )?parameters: (.+)",
                  msg)
    if m:
        return QueryError(f"{what}: no value for ${m.group(1).strip()}: add -p NAME=VALUE")
    return QueryError(f"{what}: {msg}")


def run_query(store: Store, sql: str, write: bool = False, params: dict | None = None) -> pl.DataFrame:
    """Run sql; without write=True the connection is read-only and DuckDB refuses changes.
    Either way the store's file is the only file the SQL can reach. params: values for the
    SQL's `$name` placeholders (each statement gets those it uses), bound, never pasted."""
    params = dict(params or {})
    with (store.transaction(user_sql=True) if write else store.connect(write=False, user_sql=True)) as con:
        statements = con.extract_statements(sql)
        if not statements:
            raise QueryError("query: no SQL statement given")
        unused = [n for n in params if not any(_uses(s.query, n) for s in statements)]
        if unused:
            raise QueryError(f"query: -p {', '.join(unused)} given but the SQL has no "
                             f"{', '.join('$' + n for n in unused)}")

        def own(q: str) -> dict | None:
            return {n: v for n, v in params.items() if _uses(q, n)} or None

        for stmt in statements[:-1]:
            con.execute(stmt.query, own(stmt.query)).fetchall()
        return frame(con, statements[-1].query, own(statements[-1].query))
