"""User selections: every option that takes SQL to pick compositions, in one place.

Two grammars, one per option kind:
- a **condition** on `compositions` (alias `c`): `--where` of featurize, validate and predict;
- a **query** returning `composition_id`: `train --on`, `al start --base`, `--candidates-from`,
  `al finish --pool`.

Whatever the option, the user's text becomes one complete statement that is parsed as a whole
(exactly one SELECT; a condition's statement must stay `SELECT c.composition_id FROM
compositions c WHERE (...)`: `false) UNION ALL SELECT ...` is refused), evaluated on a guarded
read-only connection, and yields **composition ids only**: the command re-reads what it needs by
id from the store (`lacking`, `by_ids`). No user text reaches a write connection, and checking a
selection opens none. Values (`$name` with -p NAME=VALUE) are bound, never pasted. Errors name
the option and the text, cut to a few hundred characters.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa

from .catalogue import printable
from .connection import open_duckdb
from .query import QueryError, friendly
from .store import Store

IDS = "_matstore_ids"   # the registered Arrow table of selected ids (composition_id)
QUOTE_CHARS = 200       # how much of the user's text an error quotes
_CONDITION = "SELECT c.composition_id FROM compositions c WHERE "


def _quote(text: str) -> str:
    return repr(printable(text.strip(), QUOTE_CHARS))


def _uses(sql: str, name: str) -> bool:
    return re.search(rf"\${re.escape(name)}\b", sql) is not None


def _tree(sql: str, what: str) -> dict:
    """The statement's parse tree (DuckDB's json_serialize_sql; nothing runs), refusing anything
    but exactly one SELECT."""
    con = open_duckdb()
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as e:
            raise QueryError(f"{what} does not parse: {printable(str(e).splitlines()[0])}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            kinds = ", ".join(s.type.name for s in statements) or "nothing"
            raise QueryError(f"{what} must be a single SQL {'condition' if 'where' in what else 'query'}; "
                             f"it parses as {len(statements)} statement(s) ({kinds})")
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    finally:
        con.close()
    if tree.get("error"):
        raise QueryError(f"{what} does not parse: {printable(tree.get('error_message', ''))}")
    return tree["statements"][0]["node"]


# the tables a condition may select from: (alias, key column)
_CONDITION_TABLES = {"compositions": ("c", "composition_id"), "structures": ("s", "structure_id")}


def condition_sql(where: str, option: str = "--where", table: str = "compositions") -> str:
    """The complete statement of a condition on compositions (alias c) or structures (alias s),
    checked as a whole; else QueryError naming the option."""
    alias, key = _CONDITION_TABLES[table]
    if not where or not where.strip():
        raise QueryError(f"{option}: empty condition")
    what = f"{option} {_quote(where)}"
    sql = f"SELECT {alias}.{key} FROM {table} {alias} WHERE ({where}\n)"
    node = _tree(sql, what)
    frm = node.get("from_table") or {}
    if (node.get("type") != "SELECT_NODE" or frm.get("type") != "BASE_TABLE"
            or frm.get("table_name") != table or frm.get("alias") != alias
            or len(node.get("select_list") or []) != 1 or node.get("group_expressions")
            or node.get("having") or node.get("qualify") or node.get("modifiers")):
        raise QueryError(f"{what} must be one SQL condition on {table} (alias {alias}); it closes "
                         f"the condition's parentheses and adds to the statement")
    return sql


def structure_ids(store: Store, where: str, option: str = "--where",
                  created_before=None) -> list[int]:
    """The ids (sorted, present in structures) that a condition on structures (alias s) selects,
    on a guarded read-only connection; created_before: only structures stored by then."""
    sql = condition_sql(where, option, table="structures")
    later = " WHERE s.created_at <= ?" if created_before is not None else ""
    try:
        with store.connect(write=False) as con:
            rows = con.execute(f"SELECT DISTINCT s.structure_id FROM structures s SEMI JOIN ({sql}) u "
                               f"ON u.structure_id = s.structure_id{later} ORDER BY 1",
                               [created_before] if later else []).fetchall()
    except duckdb.Error as e:
        why = str(friendly(e, "")).removeprefix(": ")
        raise QueryError(f"{option} {_quote(where)} is not a valid condition on structures: "
                         f"{printable(why)}") from None
    return [int(r[0]) for r in rows]


def query_sql(selection: str, option: str = "--on") -> str:
    """The complete statement of a query returning composition_id: the selection must be one
    SELECT alone and inside `SELECT DISTINCT composition_id FROM (...) s`. Trailing `;` dropped."""
    sel = selection.strip().rstrip(";").strip()
    if not sel:
        raise QueryError(f"{option}: empty selection")
    what = f"{option} {_quote(selection)}"
    _tree(sel, what)
    sql = f"SELECT DISTINCT composition_id FROM ({sel}\n) s"
    if _tree(sql, what).get("type") != "SELECT_NODE":
        raise QueryError(f"{what} must be one query returning composition_id")
    return sql


def check_query(selection: str, option: str = "--on") -> str:
    """selection (trailing `;` dropped) once query_sql accepts it; QueryError naming option."""
    query_sql(selection, option)
    return selection.strip().rstrip(";").strip()


def _bind(sql: str, text: str | None, params: dict | None, option: str) -> dict | None:
    for name in params or {}:
        if not text or not _uses(text, name):
            raise QueryError(f"{option}: -p {name} given but the SQL has no ${name}")
    return dict(params) if params else None


def ids_of(con: duckdb.DuckDBPyConnection, sql: str, text: str, option: str,
           params: dict | None = None) -> np.ndarray:
    """The ids (sorted, distinct, present in compositions) that a checked statement selects."""
    try:
        got = con.sql(f"SELECT DISTINCT c.composition_id FROM compositions c SEMI JOIN ({sql}) u "
                      f"ON u.composition_id = c.composition_id ORDER BY 1",
                      params=_bind(sql, text, params, option)).to_arrow_table()
    except duckdb.Error as e:
        kind = "condition on compositions" if sql.startswith(_CONDITION) else "query returning composition_id"
        why = str(friendly(e, "")).removeprefix(": ")
        raise QueryError(f"{option} {_quote(text)} is not a valid {kind}: {printable(why)}") from None
    return np.asarray(got.column(0).to_numpy(), dtype=np.int64)


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, ids: np.ndarray) -> Iterator[str]:
    """ids as the table IDS(composition_id) on con, for SQL that re-reads rows by id."""
    con.register(IDS, pa.table({"composition_id": pa.array(np.asarray(ids, np.int64), pa.int64())}))
    try:
        yield IDS
    finally:
        con.unregister(IDS)


def where_ids(store: Store, where: str, option: str = "--where", params: dict | None = None) -> np.ndarray:
    """The composition ids a condition selects (guarded read-only connection)."""
    sql = condition_sql(where, option)
    with store.connect(write=False) as con:
        return ids_of(con, sql, where, option, params)


def selection_ids(store: Store, selection: str, option: str = "--on", params: dict | None = None) -> np.ndarray:
    """The composition ids a query selects (guarded read-only connection)."""
    sql = query_sql(selection, option)
    with store.connect(write=False) as con:
        return ids_of(con, sql, selection, option, params)


def by_ids(store: Store, ids: np.ndarray):
    """(composition_id, elements, counts) of the compositions ids, by id, ordered (polars)."""
    from .store import frame  # noqa: PLC0415

    with store.connect(write=False) as con, registered(con, ids) as table:
        return frame(con, f"SELECT c.composition_id, c.elements, c.counts FROM compositions c "
                          f"SEMI JOIN {table} s ON s.composition_id = c.composition_id ORDER BY 1")


def lacking(store: Store, missing_sql: str, params: list, where: str | None,
            where_params: dict | None = None, option: str = "--where", error=None,
            ordered: bool = False) -> pa.Table:
    """(composition_id, elements, counts) of compositions lacking rows (missing_sql: matstore's
    own correlated condition on compositions alias c, its values `params`), only those the user's
    condition `where` selects when given. A writing command's store is prepared (migrated) by
    the caller's own writes; this only reads. A bad condition raises error (default QueryError)."""
    sql = condition_sql(where, option) if where else None
    order = " ORDER BY c.composition_id" if ordered else ""
    try:
        with store.connect(write=False) as con:
            if sql is None:
                return con.sql(f"SELECT c.composition_id, c.elements, c.counts FROM compositions c "
                               f"WHERE NOT EXISTS ({missing_sql}){order}", params=params).to_arrow_table()
            ids = ids_of(con, sql, where, option, where_params)
            with registered(con, ids) as table:
                return con.sql(f"SELECT c.composition_id, c.elements, c.counts FROM compositions c "
                               f"SEMI JOIN {table} s ON s.composition_id = c.composition_id "
                               f"WHERE NOT EXISTS ({missing_sql}){order}", params=params).to_arrow_table()
    except QueryError as e:
        if error is None:
            raise
        raise error(str(e)) from None


def prepare(store: Store) -> None:
    """Migrate an older store before a writing command reads it (the command's own first write
    connection, never one opened for a selection)."""
    if not store.read_only:
        with store.connect(write=True):
            pass
