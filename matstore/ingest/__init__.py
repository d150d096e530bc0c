"""Ingestion: a source's rows -> rejects, curation, dedupe -> compositions/materials/properties.

One ingest = one `ingests` row (source, uri, params, status, pid/host, counts, times, cursor).
Counts always satisfy rows_seen = rows_rejected + rows_curated + rows_duplicate + rows_kept.

- Every distinct formula is parsed once (compositions.try_parse); rows that do not parse, have no
  id, or carry a property that is not a number go to `rejects` with the raw row and the reason.
- Curation (matstore.curation, fixed rule order) runs before dedupe; every row a rule removes
  goes to `curated` with the raw row and the rule (counts per rule = ingests.curation).
  Whole-file sources are read and curated in memory, then written in chunks of CHUNK_ROWS per transaction. Paged API sources
  commit one page per transaction (row rules applied per page) and run the set rules (5 sigma,
  lowest energy per composition) over the ingest's rows in a final transaction.
- The source's name is registered in `sources` with its kind (dft/experiment/unknown) and level
  of theory when the ingest starts; a name recorded with another kind is refused.
- material_id = blake2b-64 of (source, external_id). Files without an id column get
  '<first 16 hex of the file's sha256>#<row>' (sources.default_id_prefix): two files with one
  name never share ids; rows stored by older versions as '<file name>#<row>' from the same path
  and composition keep their ids. A row whose material is already stored writes only the
  properties that material lacks (a new --prop), else it is a duplicate: re-running adds nothing.
- Property values must be finite numbers (inf, nan, 1e999 are rejects naming column and value);
  formulas beyond compositions' bounds and compositions whose key is taken by another element/count
  map (compositions.insert_new) are rejects too.
- The cursor stored with each chunk is where an interrupted or failed ingest with the same source,
  uri and params resumes (automatically, unless resume=False).
- Unreadable files fail when the source is opened, before any ingests row exists: the store is
  left exactly as it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

import polars as pl

from ..curation import FE, Curation, apply_set_rules
from ..sources import CHUNK_ROWS, Source
from ..store import Store, frame
from .prepare import Prepared, curated_table, material_ids, prepare
from .write import IngestResult, add_counts, open_ingest, save, write_chunk, write_rejects

__all__ = ["CHUNK_ROWS", "IngestResult", "PAGES_DONE", "Prepared", "ingest", "material_ids", "prepare", "run"]

PAGES_DONE = "end"  # cursor once every chunk is committed (only the finishing step is left)


# --- the two write paths -----------------------------------------------------------------------

def _run_whole(store: Store, source: Source, cur: Curation, res: IngestResult, cursor: str | None,
               tick: Callable[[int], None]) -> None:
    """Bounded sources: read + curate everything in memory, then write CHUNK_ROWS per transaction."""
    props = list(source.units)
    parts = [prepare(c.rows, source.name, props, cur) for c in source.chunks(None)]
    rows = pl.concat([p.rows for p in parts], how="vertical_relaxed")
    rejects = pl.concat([p.rejects for p in parts])
    n = rows.height
    rows = rows.unique(subset="material_id", keep="first", maintain_order=True)  # across parts
    dups = n - rows.height + sum(p.in_chunk_duplicates for p in parts)
    set_dropped: list[pl.DataFrame] = []
    rows, set_removed = apply_set_rules(rows, cur, set_dropped)
    curated_rows = pl.concat([p.curated_rows for p in parts] + [curated_table(set_dropped)])
    start = rows.height if cursor == PAGES_DONE else int(cursor) if cursor else 0
    if cursor is None:  # the first transaction records what was decided before writing
        curated: dict[str, int] = {}
        for d in [p.curated for p in parts] + [set_removed]:
            for k, v in d.items():
                curated[k] = curated.get(k, 0) + v
        add_counts(res, seen=sum(p.seen for p in parts), rejected=rejects.height, curated=curated,
                    duplicate=dups)
    tick(start)
    for lo in range(start, max(rows.height, 1) if cursor is None else rows.height, CHUNK_ROWS):
        part = rows.slice(lo, CHUNK_ROWS)
        hi = lo + part.height
        with store.transaction() as con:
            if lo == 0:
                write_rejects(con, res.ingest_id, rejects, curated_rows)
            kept, dup, rejected = write_chunk(con, res.ingest_id, source.name, part, source.units, source.uri)
            add_counts(res, kept=kept, duplicate=dup, rejected=rejected)
            save(con, res, str(hi) if hi < rows.height else PAGES_DONE)
        tick(part.height)


def _run_paged(store: Store, source: Source, cur: Curation, res: IngestResult, cursor: str | None,
               tick: Callable[[int], None]) -> None:
    """Paged sources: one page per transaction; set rules over the ingest's rows at the end."""
    props = list(source.units)
    if cursor != PAGES_DONE:
        for chunk in source.chunks(cursor):
            p = prepare(chunk.rows, source.name, props, cur)
            with store.transaction() as con:
                write_rejects(con, res.ingest_id, p.rejects, p.curated_rows)
                kept, dup, clash = write_chunk(con, res.ingest_id, source.name, p.rows, source.units, source.uri)
                add_counts(res, seen=p.seen, kept=kept, rejected=p.rejects.height + clash, curated=p.curated,
                            duplicate=dup + p.in_chunk_duplicates)
                save(con, res, chunk.cursor or PAGES_DONE)
            tick(p.seen)
    if cur.has_set_rules:
        with store.transaction() as con:
            # the API rows themselves are not kept: a curated row's raw is its formula and energy
            mine = frame(con, f"""
                SELECT m.material_id, m.external_id, m.composition_id, min(p.value) AS "{FE}",
                       json_object('formula', m.raw_formula, '{FE}', min(p.value))::VARCHAR AS raw
                FROM materials m LEFT JOIN properties p
                  ON p.material_id = m.material_id AND p.name = '{FE}'
                WHERE m.ingest_id = ? GROUP BY m.material_id, m.external_id, m.composition_id,
                      m.raw_formula""", [res.ingest_id])
            dropped: list[pl.DataFrame] = []
            kept, removed = apply_set_rules(mine, cur, dropped)
            write_rejects(con, res.ingest_id, None, curated_table(dropped))
            gone = mine.filter(~pl.col("material_id").is_in(kept["material_id"].implode()))
            if gone.height:
                con.register("_gone", gone.select("material_id").to_arrow())
                try:
                    for table in ("properties", "materials"):
                        con.execute(f"DELETE FROM {table} WHERE material_id IN (SELECT material_id FROM _gone)")
                finally:
                    con.unregister("_gone")
            add_counts(res, kept=-gone.height, curated=removed)
            save(con, res, PAGES_DONE)


def _refuse_label_source(store: Store, name: str) -> None:
    """Data never goes into a source that holds active-learning labels (matstore.al.labels)."""
    from pathlib import Path  # noqa: PLC0415

    from ..sources import SourceError  # noqa: PLC0415

    if not Path(store.path).exists():   # a new store (ingest creates it) holds no labels
        return
    with store.connect() as con:
        n = con.execute("SELECT count(*) FROM ingests WHERE source = ? AND uri LIKE 'al:%'",
                        [name]).fetchall()[0][0]
    if n:
        raise SourceError(f"source {name!r} holds active-learning labels ({n} label batch(es)); "
                          f"ingest data under another --source-name")


def ingest(store: Store, source: Source, curation: Curation | None = None, *, resume: bool = True,
           progress: bool = False, on_chunk: Callable[[IngestResult], None] | None = None) -> IngestResult:
    """Run one ingest of `source` into `store`; see the module docstring for the rules."""
    cur = curation or Curation()
    _refuse_label_source(store, source.name)
    params = {"source": source.params, "curation": cur.as_dict()}
    res, cursor = open_ingest(store, source, params, resume)
    t0 = datetime.now()
    bar = _Progress(progress, f"ingest {source.name}", source)

    def tick(n: int) -> None:
        bar.advance(n)
        if on_chunk is not None:
            on_chunk(res)

    try:
        with bar:
            own = getattr(source, "run_ingest", None)   # sources that write more than materials
            if own is not None:                          # (structures) run their own chunks
                own(store, cur, res, cursor, tick)
            else:
                (_run_paged if source.paged else _run_whole)(store, source, cur, res, cursor, tick)
        with store.transaction() as con:
            save(con, res, None, status="done")
        res.status = "done"
    except BaseException as e:
        res.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        try:
            with store.transaction() as con:
                con.execute("UPDATE ingests SET status = ?, finished_at = ? WHERE ingest_id = ?",
                            [res.status, datetime.now(), res.ingest_id])
        except Exception:  # noqa: BLE001 - the original error matters more; recovery marks it later
            pass
        raise
    finally:
        res.seconds = (datetime.now() - t0).total_seconds()
    return res


class _Progress:
    """A rich progress bar on stderr (or nothing); total follows the source's estimate. It advances
    by rows written, so it is filled to the total when the ingest finishes (curation drops rows)."""

    def __init__(self, enabled: bool, label: str, source: Source):
        self.source = source
        self.p = None
        if enabled:
            from .. import progress
            self.p = progress.bar(True)
            self.task = self.p.add_task(label, total=source.total)

    def __enter__(self):
        if self.p:
            self.p.__enter__()
        return self

    def __exit__(self, *exc):
        if self.p:
            if exc[0] is None:  # finished: every row was read, whatever curation kept
                done = self.p.tasks[0].completed
                total = self.source.total if self.source.total is not None else done
                self.p.update(self.task, total=max(total, done), completed=max(total, done))
            self.p.__exit__(*exc)

    def advance(self, n: int) -> None:
        if self.p:
            self.p.update(self.task, advance=n, total=self.source.total)


def run(store: Store, kind: str, /, curation: Curation | None = None, *, resume: bool = True,
        progress: bool = False, **source_options) -> IngestResult:
    """Open source `kind` with the options that were given (None = not given) and ingest it."""
    from ..sources import open_source

    source = open_source(kind, **{k: v for k, v in source_options.items()
                                  if v is not None and v != () and v != []})
    return ingest(store, source, curation, resume=resume, progress=progress)
