"""Test helper: put real formulas + targets into a store without the ingest module.

Owned by the model/training tests (a helper module, not a test file).
"""

from __future__ import annotations

import datetime as dt
import hashlib

import polars as pl

from matstore.compositions import parse
from matstore.store import append, append_new


def _material_id(source: str, ext: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{source}:{ext}".encode()).digest()[:8], "little", signed=True)


def fill(store, source: str, df: pl.DataFrame, prop: str | None, unit: str = "eV/atom",
         ingest_id: int = 1) -> int:
    """Append df's formulas (and target as property `prop`) as materials of `source`."""
    comps, mats, props = [], [], []
    for i, row in enumerate(df.iter_rows(named=True)):
        c = parse(row["formula"])
        mid = _material_id(source, f"{ingest_id}#{i}")
        comps.append((c.composition_id, c.formula, list(c.elements), list(c.counts), c.n_elements, c.n_atoms))
        mats.append((mid, ingest_id, source, f"{ingest_id}#{i}", c.composition_id, row["formula"]))
        if prop is not None:
            props.append((mid, c.composition_id, prop, float(row["target"]), unit))
    with store.transaction() as con:
        con.execute("INSERT INTO ingests (ingest_id, source, status, started_at) VALUES (?, ?, 'done', ?)",
                    [ingest_id, source, dt.datetime.now()])
        append_new(con, "compositions", pl.DataFrame(
            comps, schema=["composition_id", "formula", "elements", "counts", "n_elements", "n_atoms"],
            orient="row"), key=["composition_id"])
        append(con, "materials", pl.DataFrame(
            mats, schema=["material_id", "ingest_id", "source", "external_id", "composition_id", "raw_formula"],
            orient="row"))
        if props:
            append(con, "properties", pl.DataFrame(
                props, schema=["material_id", "composition_id", "name", "value", "unit"], orient="row"))
    return len(mats)
