"""The package's views as a small SQL project: sql/<name>.sql, one view per file.

A file starts with `--` comment lines: the question the view answers (its COMMENT ON VIEW), plus
two declarations:
- `-- depends: a, b`: the other views it reads (tables need no declaration: migrations make them);
- `-- key: col, ...`: the columns that identify a row (unique and never NULL; a test checks it).
Views are created in an order computed from the declarations, each after the views it reads.
The declarations are checked against the SQL: the views a body really reads (DuckDB's own
parser, json_serialize_sql) must be exactly those it declares, and there must be no cycle; either
mistake is a ViewError naming the view.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import duckdb

from .connection import open_duckdb
from .errors import MatstoreError
from .resources import resource_dir

_DECLARATION = re.compile(r"^--\s*(depends|key):(.*)$")


class ViewError(MatstoreError, RuntimeError):
    """A view file whose declarations do not match its SQL, or views that read each other."""


@dataclass(frozen=True)
class View:
    name: str
    body: str                   # the SELECT, header comments included
    depends: tuple[str, ...]    # the views it reads, as declared
    key: tuple[str, ...]        # the columns that identify a row, as declared


def view_definitions() -> dict[str, str]:
    """sql/<name>.sql -> the SELECT that defines view <name>."""
    return dict(_read_definitions())


@lru_cache(maxsize=1)
def _read_definitions() -> tuple[tuple[str, str], ...]:   # read once per process (~75 calls per open)
    return tuple((p.stem, p.read_text().strip().rstrip(";"))
                 for p in sorted(resource_dir("sql").glob("*.sql")))


def _header(body: str) -> list[str]:
    lines = []
    for line in body.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return lines


def view_question(body: str) -> str:
    """A view's comment: the `-- question?` header of its sql file (declarations left out), as
    one line."""
    text = [line[2:].strip() for line in _header(body) if not _DECLARATION.match(line)]
    return " ".join(x for x in text if x)


def parse_view(name: str, body: str) -> View:
    declared: dict[str, tuple[str, ...]] = {"depends": (), "key": ()}
    for line in _header(body):
        m = _DECLARATION.match(line)
        if m:
            declared[m.group(1)] += tuple(x.strip() for x in m.group(2).split(",") if x.strip())
    return View(name, body, declared["depends"], declared["key"])


_PARSER: list[duckdb.DuckDBPyConnection] = []   # one in-memory connection parses every view
_PARSER_LOCK = threading.Lock()


def _serialized(body: str) -> str:
    # a connection per view cost ~25 ms each, most of the start-up of every command that reads
    with _PARSER_LOCK:
        if not _PARSER:
            _PARSER.append(open_duckdb())
        return _PARSER[0].execute("SELECT json_serialize_sql(?)", [body]).fetchall()[0][0]


@lru_cache(maxsize=1)
def normalized_view_sql() -> dict[str, str]:
    """view -> the text DuckDB stores for the package's CREATE VIEW (its parser's rendering of
    the SELECT), computed without creating the views: a read connection compares a file's views
    with these and only shadows them with TEMP views when one differs. A name DuckDB would quote
    renders differently and simply never matches (the safe side: TEMP views are made)."""
    return {name: f"CREATE VIEW {name} AS {_rendered(body)};" for name, body in view_definitions().items()}


def _rendered(body: str) -> str:
    with _PARSER_LOCK:
        if not _PARSER:
            _PARSER.append(open_duckdb())
        return _PARSER[0].execute("SELECT json_deserialize_sql(json_serialize_sql(?))",
                                  [body]).fetchall()[0][0]


@lru_cache(maxsize=256)
def referenced_relations(body: str) -> frozenset[str]:
    """Every table, view or CTE name the SQL reads (DuckDB's parser; the SQL is not run).
    Cached: the package's views are parsed once per process."""
    tree = json.loads(_serialized(body))
    if tree.get("error"):
        raise ViewError(f"view SQL does not parse: {tree.get('error_message')}")
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE" and "table_name" in node:
                found.add(node["table_name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(found)


def order_views(defs: dict[str, str]) -> list[View]:
    """The views of `defs` (name -> SQL) in an order where each comes after the views it reads;
    ViewError names a view that reads a view it does not declare (or declares one it does not
    read, or an unknown one), and the views of a cycle."""
    views = {name: parse_view(name, body) for name, body in defs.items()}
    for v in views.values():
        try:
            reads = referenced_relations(v.body) & set(views)
        except ViewError as e:
            raise ViewError(f"view sql/{v.name}.sql: {e}") from None
        unknown = [d for d in v.depends if d not in views]
        if unknown:
            raise ViewError(f"view sql/{v.name}.sql declares `depends: {', '.join(unknown)}`: "
                            f"no such view")
        if reads != set(v.depends):
            raise ViewError(
                f"view sql/{v.name}.sql reads views {sorted(reads) or 'none'} but declares "
                f"`-- depends: {', '.join(v.depends) or '(nothing)'}`; make them the same")
    ordered: list[View] = []
    state: dict[str, str] = {}     # name -> "visiting" | "done"

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + (name,)
            raise ViewError(f"views read each other in a cycle: {' -> '.join(cycle)} "
                            f"(view sql/{name}.sql)")
        state[name] = "visiting"
        for dep in views[name].depends:
            visit(dep, path + (name,))
        state[name] = "done"
        ordered.append(views[name])

    for name in sorted(views):
        visit(name, ())
    return ordered


@lru_cache(maxsize=1)
def package_views() -> tuple[View, ...]:
    """The package's views in creation order (checked once per process)."""
    return tuple(order_views(view_definitions()))
