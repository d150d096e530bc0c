"""What is in a store: schema version, row counts per table and source, ingests."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from . import migrations
from .catalogue import ident, package_tables
from .export import base_tables
from .store import Store, frame


@dataclass
class StoreInfo:
    path: str
    schema_version: int
    code_schema_version: int
    table_counts: pl.DataFrame
    source_counts: pl.DataFrame
    ingests: pl.DataFrame


def store_info(store: Store) -> StoreInfo:
    """Row counts of every table the store's schema has (read from the file, not a hand list that
    drifts when a migration adds one), rows per source, and the ingests."""
    with store.connect(guarded=True) as con:
        # matstore's tables (identifiers from the package's schema, never the file's names)
        tables = [t for t in base_tables(con) if t in package_tables()]
        counts = [(t, con.execute(f"SELECT count(*) FROM {ident(t)}").fetchall()[0][0]) for t in tables]
        return StoreInfo(
            path=store.path,
            schema_version=migrations.current_version(con),
            code_schema_version=migrations.latest_version(),
            table_counts=pl.DataFrame(counts, schema=["table", "rows"], orient="row"),
            source_counts=frame(con, """
                SELECT m.source, any_value(s.kind) AS kind, any_value(s.method) AS method,
                       count(*) AS materials, count(DISTINCT m.composition_id) AS compositions
                FROM materials m LEFT JOIN sources s ON s.name = m.source
                GROUP BY m.source ORDER BY m.source"""),
            ingests=frame(con, """
                SELECT ingest_id, source, status, rows_seen, rows_kept, rows_rejected,
                       rows_curated, rows_duplicate,
                       round(epoch(finished_at) - epoch(started_at), 2) AS seconds, uri
                FROM ingests ORDER BY ingest_id"""),
        )
