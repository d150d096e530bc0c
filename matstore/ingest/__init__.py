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

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import polars as pl
import pyarrow as pa

from . import compositions
from .recovery import pid_alive, this_process_start
from .curation import FE, RULES, Curation, apply_row_rules, apply_set_rules
from .sources import CHUNK_ROWS, KNOWN_SOURCES, Source, SourceError
from .store import Store, append, append_new, frame, next_id

PAGES_DONE = "end"  # cursor once every chunk is committed (only the finishing step is left)


@dataclass
class IngestResult:
    ingest_id: int
    source: str
    uri: str
    status: str
    resumed: bool
    rows_seen: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    rows_curated: int = 0
    rows_duplicate: int = 0
    curation: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def material_ids(source: str, external_ids: list[str]) -> list[int]:
    """Deterministic signed 64-bit ids of (source, external_id)."""
    prefix = source.encode() + b"\x1f"
    return [int.from_bytes(hashlib.blake2b(prefix + e.encode(), digest_size=8).digest(),
                           "little", signed=True) for e in external_ids]


# --- turning raw rows into store rows ----------------------------------------------------------

@dataclass
class Prepared:
    rows: pl.DataFrame        # material_id, external_id, composition_id, raw_formula, canonical, elements,
                              # counts, <props>, raw[, legacy_id]; compositions rows: _composition_rows
    rejects: pl.DataFrame     # row_ref, raw, reason
    seen: int
    curated: dict[str, int]
    in_chunk_duplicates: int
    curated_rows: pl.DataFrame | None = None  # row_ref, raw, rule: what the row rules removed


def _parse_formulas(formulas: pl.Series) -> pl.DataFrame:
    """Distinct formula strings -> composition columns (null id + reason where unparseable)."""
    uniq = formulas.drop_nulls().unique().to_list()
    ok_f, ids, canon, flat_el, flat_n, offsets = [], [], [], [], [], [0]
    bad_f, reasons = [], []
    for f in uniq:
        c = compositions.try_parse(f)
        if isinstance(c, str):
            bad_f.append(f), reasons.append(c)
        else:
            ok_f.append(f), ids.append(c.composition_id), canon.append(c.formula)
            flat_el.extend(c.elements), flat_n.extend(c.counts), offsets.append(len(flat_el))
    # list columns through Arrow offsets: building them from nested Python lists is ~10x slower
    off = pa.array(offsets, pa.int32())
    ok = pl.from_arrow(pa.table({
        "formula": pa.array(ok_f, pa.string()), "composition_id": pa.array(ids, pa.int64()),
        "canonical": pa.array(canon, pa.string()),
        "elements": pa.ListArray.from_arrays(off, pa.array(flat_el, pa.string())),
        "counts": pa.ListArray.from_arrays(off, pa.array(flat_n, pa.int32())),
        "reason": pa.nulls(len(ok_f), pa.string())}))
    bad = pl.DataFrame({"formula": bad_f, "reason": reasons}, schema={"formula": pl.String, "reason": pl.String})
    return pl.concat([ok, bad], how="diagonal")


def prepare(raw: pl.DataFrame, source: str, props: list[str], cur: Curation) -> Prepared:
    """Parse, check, row-curate and dedupe one chunk of raw rows (no store access)."""
    seen = raw.height
    missing = [f"raw:{p}" for p in props if f"raw:{p}" not in raw.columns]
    raw = raw.with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
    parsed = _parse_formulas(raw["formula"])
    df = raw.with_row_index("_i").join(parsed, on="formula", how="left").sort("_i")
    reason = (pl.when(pl.col("formula").is_null() | (pl.col("formula").str.strip_chars() == ""))
              .then(pl.lit("empty formula"))
              .when(pl.col("reason").is_not_null()).then(pl.lit("formula: ") + pl.col("reason"))
              .when(pl.col("external_id").is_null() | (pl.col("external_id") == ""))
              .then(pl.lit("no external id")))
    casts = []
    for p in props:
        col = f"raw:{p}"
        value = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
        given = pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")
        reason = (reason.when(given & value.is_null()).then(pl.lit(f"{p}: not a number: ") + pl.col(col))
                  .when(given & ~value.is_finite())  # inf, nan, 1e999: poison every mean and model
                  .then(pl.lit(f"{p}: not a finite number: ") + pl.col(col)))
        casts.append(value.alias(p))
    df = df.with_columns(reason.alias("_reason"), *casts)
    rejects = df.filter(pl.col("_reason").is_not_null()).select(
        pl.col("external_id").fill_null("").alias("row_ref"), "raw", pl.col("_reason").alias("reason"))
    good = df.filter(pl.col("_reason").is_null())
    good = good.with_columns(pl.Series("material_id", material_ids(source, good["external_id"].to_list()),
                                       dtype=pl.Int64))
    n = good.height
    good = good.unique(subset="material_id", keep="first", maintain_order=True)
    dups = n - good.height
    dropped: list[pl.DataFrame] = []
    good, curated = apply_row_rules(good, cur, dropped)
    extra = [c for c in ("legacy_id",) if c in good.columns]
    rows = good.select("material_id", "external_id", "composition_id",
                       pl.col("formula").alias("raw_formula"), "canonical", "elements", "counts", *props,
                       "raw", *extra)
    return Prepared(rows, rejects, seen, curated, dups, _curated_rows(dropped))


def _curated_rows(dropped: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames a curation rule removed -> the `curated` table's row_ref, raw, rule."""
    cols = [pl.col("external_id").cast(pl.String).alias("row_ref"), pl.col("raw").cast(pl.String),
            pl.col("rule").cast(pl.String)]
    if not dropped:
        return pl.DataFrame(schema={"row_ref": pl.String, "raw": pl.String, "rule": pl.String})
    return pl.concat([d.select(cols) for d in dropped])


def _composition_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """compositions-table rows of prepared rows (one per row; n_atoms summed as 64-bit)."""
    return rows.select("composition_id", pl.col("canonical").alias("formula"), "elements", "counts",
                       pl.col("elements").list.len().cast(pl.Int32).alias("n_elements"),
                       pl.col("counts").cast(pl.List(pl.Int64)).list.sum().alias("n_atoms"))


def _lookup(con, sql: str, ids: pl.DataFrame, params: list | None = None) -> pl.DataFrame:
    con.register("_ingest_ids", ids.to_arrow())
    try:
        return frame(con, sql, params)
    finally:
        con.unregister("_ingest_ids")


def _legacy_ids(con, rows: pl.DataFrame, source: str, uri: str) -> pl.DataFrame:
    """Rows stored by a matstore before content-hash ids ('<file name>#<row>') from this same
    file path, with the same composition, keep their stored material_id: re-ingesting the file
    after an upgrade adds nothing twice (and adds properties that were missing)."""
    if "legacy_id" not in rows.columns or rows.height == 0:
        return rows
    old = _lookup(con, "SELECT m.external_id AS legacy_id, m.composition_id, m.material_id AS _old "
                       "FROM materials m JOIN ingests i USING (ingest_id) "
                       "WHERE m.source = ? AND i.uri = ? "
                       "AND m.external_id IN (SELECT legacy_id FROM _ingest_ids)",
                  rows.select("legacy_id"), [source, uri])
    if old.height == 0:
        return rows
    return (rows.join(old.unique(subset="legacy_id"), on=["legacy_id", "composition_id"], how="left")
            .with_columns(pl.coalesce("_old", "material_id").alias("material_id")).drop("_old"))


def _long(rows: pl.DataFrame, units: dict[str, str | None]) -> pl.DataFrame | None:
    long = [rows.filter(pl.col(p).is_not_null()).select(
                "material_id", "composition_id", pl.lit(p).alias("name"), pl.col(p).alias("value"),
                pl.lit(units.get(p), pl.String).alias("unit"))
            for p in units if p in rows.columns]
    return pl.concat(long) if long else None


def _write(con, ingest_id: int, source: str, rows: pl.DataFrame, units: dict[str, str | None],
           uri: str | None = None) -> tuple[int, int, int]:
    """Write one chunk of prepared rows; returns (kept, duplicate, rejected).

    New materials are written with their composition unless its key is taken by another
    element/count map (a reject: compositions.insert_new). A row whose material is stored with the
    same composition adds the properties that material lacks (kept if it added any, else a
    duplicate): re-ingesting with another --prop stores the new property."""
    if rows.height == 0:
        return 0, 0, 0
    rows = _legacy_ids(con, rows, source, uri or "")
    stored = _lookup(con, "SELECT material_id, composition_id AS _stored_comp FROM materials "
                          "WHERE material_id IN (SELECT material_id FROM _ingest_ids)",
                     rows.select("material_id"))
    rows = rows.join(stored, on="material_id", how="left")
    new = rows.filter(pl.col("_stored_comp").is_null())
    old = rows.filter(pl.col("_stored_comp") == pl.col("composition_id"))
    kept = rejected = 0
    if new.height:
        _, taken_by = compositions.insert_new(con, _composition_rows(new))
        clash = taken_by.is_not_null()
        if clash.any():
            bad = new.filter(clash).with_columns(taken_by.filter(clash).alias("_taken_by"))
            _rejects(con, ingest_id, bad.select(
                pl.col("external_id").alias("row_ref"), "raw",
                (pl.lit(compositions.collision_reason("")) + pl.col("_taken_by")).alias("reason")))
            new, rejected = new.filter(~clash), bad.height
        append(con, "materials", new.select(
            "material_id", pl.lit(ingest_id, pl.Int32).alias("ingest_id"), pl.lit(source).alias("source"),
            "external_id", "composition_id", "raw_formula"))
        long = _long(new, units)
        if long is not None:
            append(con, "properties", long)
        kept = new.height
    long = _long(old, units) if old.height else None
    if long is not None and long.height:
        have = _lookup(con, "SELECT DISTINCT material_id, name FROM properties "
                            "WHERE material_id IN (SELECT material_id FROM _ingest_ids)",
                       old.select("material_id"))
        missing = long.join(have, on=["material_id", "name"], how="anti") if have.height else long
        if missing.height:
            append(con, "properties", missing)
            kept += missing["material_id"].n_unique()
    return kept, rows.height - kept - rejected, rejected


# --- the ingests row ---------------------------------------------------------------------------

_COUNTS = ("rows_seen", "rows_kept", "rows_rejected", "rows_curated", "rows_duplicate")


def _find_resumable(con, source: Source, params: dict) -> tuple | None:
    rows = con.execute(
        "SELECT ingest_id, params::VARCHAR, cursor, rows_seen, rows_kept, rows_rejected, rows_curated, "
        "rows_duplicate, curation::VARCHAR, status, pid, host, pid_started FROM ingests "
        "WHERE source = ? AND uri = ? "
        "AND status IN ('interrupted', 'failed', 'running') ORDER BY ingest_id DESC",  # no cursor: killed before chunk 1
        [source.name, source.uri]).fetchall()
    for r in rows:
        if r[9] == "running" and (r[11] != socket.gethostname() or pid_alive(r[10], r[12])):
            continue  # a live ingest (or one on another host): not ours to take over
        if json.loads(r[1]) == json.loads(json.dumps(params, default=str)):
            return r
    return None


def _register_source(con, source: Source) -> None:
    """Record the source's kind in `sources`; refuse a kind or method other than the recorded one."""
    row = con.execute("SELECT kind, method FROM sources WHERE name = ?", [source.name]).fetchall()
    known = KNOWN_SOURCES.get(source.name)
    kind = source.kind or (known[0] if known else None)
    method = source.method or (known[1] if known else None)
    if row:
        have_kind, have_method = row[0]
        if (kind is not None and kind != have_kind) or (method is not None and method != have_method):
            raise SourceError(
                f"source {source.name!r} is recorded in this store as {have_kind}"
                f"{' (' + have_method + ')' if have_method else ''}, not {kind or have_kind}"
                f"{' (' + method + ')' if method else ''}; give this file its own --source-name")
        return
    con.execute("INSERT INTO sources (name, kind, method, description) VALUES (?, ?, ?, ?)",
                [source.name, kind or "unknown", method, known[2] if known else f"file {source.uri}"])


def _start(store: Store, source: Source, params: dict, resume: bool) -> tuple[IngestResult, str | None]:
    with store.transaction() as con:
        _register_source(con, source)
        found = _find_resumable(con, source, params) if resume else None
        if found:
            ingest_id, _, cursor = found[:3]
            con.execute("UPDATE ingests SET status = 'running', pid = ?, host = ?, pid_started = ?, "
                        "finished_at = NULL WHERE ingest_id = ?",
                        [os.getpid(), socket.gethostname(), this_process_start(), ingest_id])
            res = IngestResult(ingest_id, source.name, source.uri, "running", True,
                               *found[3:8], curation=json.loads(found[8] or "{}"))
            return res, cursor
        ingest_id = next_id(con, "ingests", "ingest_id")
        con.execute("INSERT INTO ingests (ingest_id, source, uri, params, status, started_at, pid, host, "
                    "pid_started, curation) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, '{}')",
                    [ingest_id, source.name, source.uri, json.dumps(params, default=str),
                     datetime.now(), os.getpid(), socket.gethostname(), this_process_start()])
        return IngestResult(ingest_id, source.name, source.uri, "running", False), None


def _add_counts(res: IngestResult, seen=0, kept=0, rejected=0, curated: dict | None = None, duplicate=0):
    res.rows_seen += seen
    res.rows_kept += kept
    res.rows_rejected += rejected
    res.rows_duplicate += duplicate
    for rule, n in (curated or {}).items():
        res.curation[rule] = res.curation.get(rule, 0) + n
        res.rows_curated += n


def _save(con, res: IngestResult, cursor: str | None, status: str | None = None) -> None:
    con.execute(
        "UPDATE ingests SET rows_seen = ?, rows_kept = ?, rows_rejected = ?, rows_curated = ?, "
        "rows_duplicate = ?, curation = ?, cursor = ?, status = coalesce(?, status), "
        "finished_at = CASE WHEN ? IS NULL THEN finished_at ELSE ? END WHERE ingest_id = ?",
        [res.rows_seen, res.rows_kept, res.rows_rejected, res.rows_curated, res.rows_duplicate,
         json.dumps({r: res.curation[r] for r in RULES if r in res.curation}), cursor, status,
         status, datetime.now(), res.ingest_id])


def _rejects(con, ingest_id: int, rejects: pl.DataFrame | None, curated: pl.DataFrame | None = None) -> None:
    """Rejected rows and, when given, the rows curation removed."""
    if rejects is not None and rejects.height:
        append(con, "rejects", rejects.select(pl.lit(ingest_id, pl.Int32).alias("ingest_id"),
                                              "row_ref", "raw", "reason"))
    if curated is not None and curated.height:
        append(con, "curated", curated.select(pl.lit(ingest_id, pl.Int32).alias("ingest_id"),
                                              "row_ref", "raw", "rule"))


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
    curated_rows = pl.concat([p.curated_rows for p in parts] + [_curated_rows(set_dropped)])
    start = rows.height if cursor == PAGES_DONE else int(cursor) if cursor else 0
    if cursor is None:  # the first transaction records what was decided before writing
        curated: dict[str, int] = {}
        for d in [p.curated for p in parts] + [set_removed]:
            for k, v in d.items():
                curated[k] = curated.get(k, 0) + v
        _add_counts(res, seen=sum(p.seen for p in parts), rejected=rejects.height, curated=curated,
                    duplicate=dups)
    tick(start)
    for lo in range(start, max(rows.height, 1) if cursor is None else rows.height, CHUNK_ROWS):
        part = rows.slice(lo, CHUNK_ROWS)
        hi = lo + part.height
        with store.transaction() as con:
            if lo == 0:
                _rejects(con, res.ingest_id, rejects, curated_rows)
            kept, dup, rejected = _write(con, res.ingest_id, source.name, part, source.units, source.uri)
            _add_counts(res, kept=kept, duplicate=dup, rejected=rejected)
            _save(con, res, str(hi) if hi < rows.height else PAGES_DONE)
        tick(part.height)


def _run_paged(store: Store, source: Source, cur: Curation, res: IngestResult, cursor: str | None,
               tick: Callable[[int], None]) -> None:
    """Paged sources: one page per transaction; set rules over the ingest's rows at the end."""
    props = list(source.units)
    if cursor != PAGES_DONE:
        for chunk in source.chunks(cursor):
            p = prepare(chunk.rows, source.name, props, cur)
            with store.transaction() as con:
                _rejects(con, res.ingest_id, p.rejects, p.curated_rows)
                kept, dup, clash = _write(con, res.ingest_id, source.name, p.rows, source.units, source.uri)
                _add_counts(res, seen=p.seen, kept=kept, rejected=p.rejects.height + clash, curated=p.curated,
                            duplicate=dup + p.in_chunk_duplicates)
                _save(con, res, chunk.cursor or PAGES_DONE)
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
            _rejects(con, res.ingest_id, None, _curated_rows(dropped))
            gone = mine.filter(~pl.col("material_id").is_in(kept["material_id"].implode()))
            if gone.height:
                con.register("_gone", gone.select("material_id").to_arrow())
                try:
                    for table in ("properties", "materials"):
                        con.execute(f"DELETE FROM {table} WHERE material_id IN (SELECT material_id FROM _gone)")
                finally:
                    con.unregister("_gone")
            _add_counts(res, kept=-gone.height, curated=removed)
            _save(con, res, PAGES_DONE)


def ingest(store: Store, source: Source, curation: Curation | None = None, *, resume: bool = True,
           progress: bool = False, on_chunk: Callable[[IngestResult], None] | None = None) -> IngestResult:
    """Run one ingest of `source` into `store`; see the module docstring for the rules."""
    cur = curation or Curation()
    params = {"source": source.params, "curation": cur.as_dict()}
    res, cursor = _start(store, source, params, resume)
    t0 = datetime.now()
    bar = _Progress(progress, f"ingest {source.name}", source)

    def tick(n: int) -> None:
        bar.advance(n)
        if on_chunk is not None:
            on_chunk(res)

    try:
        with bar:
            (_run_paged if source.paged else _run_whole)(store, source, cur, res, cursor, tick)
        with store.transaction() as con:
            _save(con, res, None, status="done")
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
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
            from rich.console import Console
            self.p = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              console=Console(stderr=True), transient=False)
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
    from .sources import open_source

    source = open_source(kind, **{k: v for k, v in source_options.items()
                                  if v is not None and v != () and v != []})
    return ingest(store, source, curation, resume=resume, progress=progress)
