"""Test helpers: a fresh store cheaply (new_store); real formulas + targets into a store without
the ingest module (fill).

Owned by the model/training tests (a helper module, not a test file).
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import shutil
import tempfile
from pathlib import Path

import polars as pl

from matstore.compositions import parse
from matstore.store import Store, append, append_new

_TEMPLATE: list[Path] = []   # this process's store made by Store.init, copied by new_store


def template_path() -> Path:
    """The file Store.init made once in this process (a folder removed at exit)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="matstore-template-"))
        atexit.register(shutil.rmtree, folder, True)
        store = Store.init(folder / "template.duckdb")
        assert not Path(store.path + ".wal").exists()   # init checkpoints: the file is the whole store
        _TEMPLATE.append(Path(store.path))
    return _TEMPLATE[0]


def new_store(path) -> Store:
    """A fresh, migrated store at path (which must not exist): a file copy of one made by
    Store.init, ~0.1 s where Store.init takes ~0.5 s (migrations and 28 views each time).
    test_store.py checks that the copy is what Store.init makes. Tests of init itself call
    Store.init."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"new_store: {path} exists (Store.init upgrades an existing file)")
    shutil.copyfile(template_path(), path)
    return Store(path)


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
