"""Ingesting structures: entries of a file or an OPTIMADE database -> materials, properties and
`structures` rows, one chunk (or page) per transaction, through matstore.ingest's ingests row.

Per chunk, in one transaction: every entry without a structure, or whose structure fails
matstore.structures.checks, goes to `rejects` with its reason and raw text; the others become
materials (formula = the cell's reduced formula; --prop columns as properties, checked like any
ingest) and known structures (origin 'known', method = the format, material_id = the entry's,
ingest_id = this ingest). The cursor committed with each chunk is where a killed ingest resumes
(entries read so far, or the next OPTIMADE page URL). Counts: rows_seen = rejected + duplicate + kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterator

import polars as pl

from ..curation import Curation
from ..ingest.prepare import prepare
from ..ingest.write import add_counts, save, write_chunk, write_rejects
from ..sources import Source
from ..store import Store
from .checks import Limits, check
from .readers import Entry
from .store import structure_rows, write_rows

ENTRIES_PER_CHUNK = 500
DONE = "end"


@dataclass
class StructureSource(Source):
    """A Source whose rows are structures. entry_chunks(cursor) yields (entries, next cursor)."""

    limits: Limits = field(default_factory=Limits)
    method_name: str = "cif"      # structures.method of what it stores
    entry_chunks: Callable[[str | None], Iterator[tuple[list[Entry], str | None]]] | None = None

    def run_ingest(self, store: Store, cur: Curation, res, cursor: str | None, tick) -> None:
        if cursor == DONE:
            return
        for entries, nxt in self.entry_chunks(cursor):
            with store.transaction() as con:
                seen, rejected, kept, dup = write_entries(con, self, res.ingest_id, entries)
                add_counts(res, seen=seen, rejected=rejected, kept=kept, duplicate=dup)
                save(con, res, nxt or DONE)
            tick(seen)


def _rejects(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"row_ref": pl.String, "raw": pl.String, "reason": pl.String},
                        orient="row")


def write_entries(con, source: StructureSource, ingest_id: int, entries: list[Entry]) -> tuple[int, int, int, int]:
    """One chunk in the caller's transaction; returns (seen, rejected, kept, duplicate)."""
    bad, good = [], []
    for e in entries:
        s, reason = (e.structure, e.reason) if e.structure is None else check(e.structure, source.limits)
        if s is None:
            bad.append((e.external_id, e.raw, reason or "no structure"))
        else:
            good.append((e, s))
    props = list(source.units)
    raw = pl.DataFrame({
        "external_id": [e.external_id for e, _ in good],
        "formula": [s.composition.reduced_formula for _, s in good],
        "raw": [json.dumps({"external_id": e.external_id, **e.props}) for e, _ in good],
        **{f"raw:{p}": [None if e.props.get(p) is None else str(e.props.get(p)) for e, _ in good] for p in props},
    }, schema={"external_id": pl.String, "formula": pl.String, "raw": pl.String,
               **{f"raw:{p}": pl.String for p in props}})
    prep = prepare(raw, source.name, props, Curation())
    write_rejects(con, ingest_id, pl.concat([_rejects(bad), prep.rejects]))
    kept, dup, clash = write_chunk(con, ingest_id, source.name, prep.rows, source.units, source.uri)
    if prep.rows.height:
        by_id = {e.external_id: (e, s) for e, s in good}
        stored = {r[0] for r in con.execute(
            "SELECT material_id FROM materials WHERE list_contains(?::BIGINT[], material_id)",
            [prep.rows["material_id"].to_list()]).fetchall()}
        pick = [(m, by_id[x]) for m, x in zip(prep.rows["material_id"], prep.rows["external_id"]) if m in stored]
        details = [{"external_id": e.external_id, **({"disorder": "majority species per site"}
                                                      if not e.structure.is_ordered else {})}
                   for _, (e, _) in pick]
        rows = structure_rows([s for _, (_, s) in pick], "known", source.method_name,
                              material_ids=[m for m, _ in pick], ingest_id=ingest_id, details=details)
        write_rows(con, rows)
    return len(entries), len(bad) + prep.rejects.height + clash, kept, dup + prep.in_chunk_duplicates


def chunked(entries: Iterator[Entry], start: int, size: int = ENTRIES_PER_CHUNK
            ) -> Iterator[tuple[list[Entry], str | None]]:
    """Entries after the first `start`, in chunks; the cursor is the number read so far."""
    buf, n = [], 0
    for e in entries:
        n += 1
        if n <= start:
            continue
        buf.append(e)
        if len(buf) == size:
            yield buf, str(n)
            buf = []
    if buf:
        yield buf, str(n)
