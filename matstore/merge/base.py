"""What every step of a merge shares: the name the received copy is attached under, the guards
on every connection that reads it, the error, and quoting of identifiers from our own schema."""

from __future__ import annotations

from ..errors import MatstoreError

SRC = "_matstore_merge_src"

# DuckDB settings for every connection that reads a received file.
NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
GUARDS = {"enable_external_access": False, **NO_EXTENSIONS}


class MergeError(MatstoreError, RuntimeError):
    """A merge that cannot be done as asked; the message says why (nothing was changed)."""


def scalar(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def ident(name: str) -> str:
    """A quoted SQL identifier (names come from our schema; quotes doubled all the same)."""
    return '"' + str(name).replace('"', '""') + '"'


def literal(p: str) -> str:
    """The inside of a single-quoted SQL string literal."""
    return str(p).replace("'", "''")
