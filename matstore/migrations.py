"""Numbered schema migrations (migrations/NNNN_name.sql), applied in order, recorded in a table.

Append-only: never edit a migration that has shipped; add the next number. Numbers are reserved
per branch while several are written at once, so the package may know 1..11 and 13 before 12
lands: a store gets every known migration it lacks, in number order. A store's recorded
migrations are checked by number AND name against the package's: a store that went through a
different migration under the same number (another branch's, say) is refused, not upgraded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .resources import resource_dir
from .errors import MatstoreError

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SchemaTooNewError(MatstoreError, RuntimeError):
    """The store was written by a newer matstore; we refuse to touch it."""


class SchemaMismatchError(MatstoreError, RuntimeError):
    """The store records a migration this matstore does not know under that number."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text()


def known_migrations() -> list[Migration]:
    found = []
    for p in sorted(resource_dir("migrations").glob("*.sql")):
        m = _NAME_RE.match(p.name)
        if not m:
            raise ValueError(f"migration file {p.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), p))
    versions = [m.version for m in found]
    if versions[:1] != [1] or any(b <= a for a, b in zip(versions, versions[1:])):
        raise ValueError(f"migrations must be numbered from 1, each number once, found {versions}")
    return found


def latest_version() -> int:
    return known_migrations()[-1].version


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_name = 'schema_migrations' AND table_schema = 'main'").fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]


def applied(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """(version, name) of the migrations the store records, in order."""
    if not current_version(con):
        return []
    return [tuple(r) for r in con.execute("SELECT version, name FROM schema_migrations ORDER BY version")
            .fetchall()]


def applied_versions(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    """applied(), or nothing where the table is yet to be made."""
    return applied(con)


def check_not_newer(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """The store's schema version, after checking that every migration it records is the
    package's migration of that number and name."""
    have, know = current_version(con), latest_version()
    if have > know:
        raise SchemaTooNewError(
            f"store {path} has schema version {have}, but this matstore knows only up to "
            f"{know}; upgrade matstore to open it (the store was not changed)")
    names = {m.version: m.name for m in known_migrations()}
    for version, name in applied(con):
        if names.get(version) != name:
            raise SchemaMismatchError(
                f"store {path} records migration {version:04d}_{name}, but this matstore's "
                f"migration {version:04d} is {names.get(version)!r}: it comes from another line of "
                f"matstore; refusing to open it (the store was not changed)")
    return have


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> list[Migration]:
    """Apply pending migrations, each in its own transaction. Returns those applied."""
    have = check_not_newer(con, path)
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)")
    applied = []
    done = {v for v, _ in applied_versions(con)}
    for mig in [m for m in known_migrations() if m.version not in done]:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(mig.sql())
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [mig.version, mig.name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(mig)
    return applied
