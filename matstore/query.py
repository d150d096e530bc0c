"""User SQL against the store: read-only by default, so a stray DDL/DML cannot change it.

Every piece of SQL a user hands matstore (`query`, `--where`, `train --on`) runs on a connection
with DuckDB's external-access guards on (store.guard): no COPY TO, EXPORT, ATTACH, reading other
files or installing extensions, even with --write. Conditions and selections are checked to be
one expression / one SELECT before anything runs, and are evaluated on a read-only connection:
a write connection only ever receives the composition ids they select.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl

from .errors import MatstoreError
from .connection import open_duckdb
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


def where_params(missing_sql: str, params: list, where: str | None, bound: dict | None,
                 option: str = "--where") -> tuple[str, list | dict]:
    """matstore's own SQL (its `?` placeholders, values `params`) made to run beside a user
    condition that has `$name` placeholders (values `bound`): DuckDB binds either `?` or names in
    one statement, so ours become `$_matstore_i`. Without `bound`, nothing changes."""
    if not bound:
        return missing_sql, params
    for name in bound:
        if not where or not _uses(where, name):
            raise QueryError(f"{option}: -p {name} given but the condition has no ${name}")
        if name.startswith("_matstore_"):
            raise QueryError(f"{option}: parameter names starting with _matstore_ are matstore's")
    parts = missing_sql.split("?")
    assert len(parts) == len(params) + 1, "one value per ? of matstore's own SQL"
    sql = parts[0] + "".join(f"$_matstore_{i}{p}" for i, p in enumerate(parts[1:]))
    return sql, {**{f"_matstore_{i}": v for i, v in enumerate(params)}, **bound}


def _one_select(sql: str, what: str) -> None:
    """Refuse sql unless it parses as exactly one SELECT statement (no `;`-chained payloads)."""
    con = open_duckdb()  # parsing only: nothing is executed
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
