"""Writing prepared rows in the caller's transaction: materials, compositions and properties of
one chunk (dedupe against what is stored, legacy ids kept), rejected and curated rows, and the
`ingests` row that records an ingest's counts and cursor (started, resumed, saved)."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from .. import compositions
from ..curation import RULES
from ..recovery import pid_alive, this_process_start
from ..sources import KNOWN_SOURCES, Source, SourceError
from ..store import Store, append, frame, next_id
from .prepare import composition_rows



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
    flagged: dict[str, int] = field(default_factory=dict)   # kept but flagged (physical outliers)


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


def write_chunk(con, ingest_id: int, source: str, rows: pl.DataFrame, units: dict[str, str | None],
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
        _, taken_by = compositions.insert_new(con, composition_rows(new))
        clash = taken_by.is_not_null()
        if clash.any():
            bad = new.filter(clash).with_columns(taken_by.filter(clash).alias("_taken_by"))
            write_rejects(con, ingest_id, bad.select(
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


# --- the ingests row ---------------------------------------------------------------------------

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


def open_ingest(store: Store, source: Source, params: dict, resume: bool) -> tuple[IngestResult, str | None]:
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


def add_counts(res: IngestResult, seen=0, kept=0, rejected=0, curated: dict | None = None, duplicate=0):
    res.rows_seen += seen
    res.rows_kept += kept
    res.rows_rejected += rejected
    res.rows_duplicate += duplicate
    for rule, n in (curated or {}).items():
        res.curation[rule] = res.curation.get(rule, 0) + n
        res.rows_curated += n


def save(con, res: IngestResult, cursor: str | None, status: str | None = None) -> None:
    con.execute(
        "UPDATE ingests SET rows_seen = ?, rows_kept = ?, rows_rejected = ?, rows_curated = ?, "
        "rows_duplicate = ?, curation = ?, cursor = ?, status = coalesce(?, status), "
        "finished_at = CASE WHEN ? IS NULL THEN finished_at ELSE ? END WHERE ingest_id = ?",
        [res.rows_seen, res.rows_kept, res.rows_rejected, res.rows_curated, res.rows_duplicate,
         json.dumps({r: res.curation[r] for r in RULES if r in res.curation}), cursor, status,
         status, datetime.now(), res.ingest_id])


def write_rejects(con, ingest_id: int, rejects: pl.DataFrame | None, curated: pl.DataFrame | None = None) -> None:
    """Rejected rows and, when given, the rows curation removed."""
    if rejects is not None and rejects.height:
        append(con, "rejects", rejects.select(pl.lit(ingest_id, pl.Int32).alias("ingest_id"),
                                              "row_ref", "raw", "reason"))
    if curated is not None and curated.height:
        append(con, "curated", curated.select(pl.lit(ingest_id, pl.Int32).alias("ingest_id"),
                                              "row_ref", "raw", "rule"))
