"""Structures in and out of the store: pymatgen Structures <-> `structures` rows.

Stable API (other modules and branches build on it; keep the signatures):

    rows = structure_rows(structures, origin, method, material_ids=None, parents=None,
                          ingest_id=None, run_id=None, details=None, symprec=0.01, symmetries=None)
        -> pyarrow Table of `structures` rows (no store access; structures must be ordered and
           checked, see matstore.structures.checks; symmetries: their Symmetry where the caller
           knows it already, e.g. symmetry.relabelled, else spglib is run per structure)
    ids = write_structures(con_or_store, structures, origin, method, **same keywords)
        -> list of structure_id, one per input structure, in order; a structure already stored
           (same structure_id) is not written again and its id is returned
    n_new = write_rows(con, rows)            -> rows actually inserted (caller's transaction)
    structures = read_structures(con_or_store, ids)   -> pymatgen Structures in the order of ids
    frame = structures_frame(con_or_store, origin=None, composition_ids=None, run_id=None,
                             ingest_id=None, ids=None, limit=None)   -> polars frame of rows
    structure = to_structure(row)            -> pymatgen Structure of one frame row (dict)

origin is one of ORIGINS. structure_id = blake2b-64 of (origin, method, material_id, fingerprint):
re-ingesting a file or re-running a prediction adds nothing; one structure may be stored once per
origin/method/material (e.g. as known from two sources, or relaxed by two potentials). Each
structure's composition is inserted into `compositions` if new (key-checked: a key collision is a
StructureError naming the formula).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import datetime
from typing import Iterable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from ..errors import MatstoreError
from .symmetry import DEFAULT_SYMPREC, analyse

ORIGINS = ("known", "template", "generated", "relaxed")


class StructureError(MatstoreError, ValueError):
    """A structure that cannot be stored or read as asked; the message says which and why."""


def structure_id(origin: str, method: str, material_id: int | None, fingerprint: str) -> int:
    text = f"{origin}\x1f{method}\x1f{'' if material_id is None else int(material_id)}\x1f{fingerprint}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def _per_item(value, n: int, name: str) -> list:
    if value is None or isinstance(value, (int, str, dict)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise StructureError(f"{name}: {len(value)} values for {n} structures")
    return value


def structure_rows(structures: Sequence, origin: str, method: str, *, material_ids=None, parents=None,
                   ingest_id: int | None = None, run_id: int | None = None, details=None,
                   symprec: float = DEFAULT_SYMPREC, symmetries=None) -> pa.Table:
    """The `structures` rows of ordered pymatgen Structures (see the module docstring)."""
    from .. import compositions  # noqa: PLC0415

    if origin not in ORIGINS:
        raise StructureError(f"origin {origin!r} is not one of {', '.join(ORIGINS)}")
    n = len(structures)
    mats, pars, dets = (_per_item(material_ids, n, "material_ids"), _per_item(parents, n, "parents"),
                        _per_item(details, n, "details"))
    syms = _per_item(symmetries, n, "symmetries")
    cols: dict[str, list] = {k: [] for k in (
        "structure_id", "composition_id", "material_id", "origin", "method", "parent_structure_id",
        "ingest_id", "run_id", "lattice", "species", "frac_coords", "n_sites", "volume",
        "spacegroup_number", "spacegroup_symbol", "symprec", "prototype", "fingerprint", "details",
        "formula", "elements", "counts")}
    now = datetime.now()
    for s, mat, par, det, known in zip(structures, mats, pars, dets, syms):
        if not s.is_ordered:
            raise StructureError(f"{s.composition.formula}: partially occupied sites cannot be stored")
        comp = compositions.parse(s.composition.formula.replace(" ", ""))
        sym = known if known is not None else analyse(s, symprec)
        cols["structure_id"].append(structure_id(origin, method, mat, sym.fingerprint))
        cols["composition_id"].append(comp.composition_id)
        cols["material_id"].append(None if mat is None else int(mat))
        cols["origin"].append(origin)
        cols["method"].append(method)
        cols["parent_structure_id"].append(None if par is None else int(par))
        cols["ingest_id"].append(ingest_id)
        cols["run_id"].append(run_id)
        cols["lattice"].append(np.asarray(s.lattice.matrix, float).tolist())
        cols["species"].append([site.specie.symbol for site in s])
        cols["frac_coords"].append(np.asarray(s.frac_coords, float).tolist())
        cols["n_sites"].append(len(s))
        cols["volume"].append(float(s.volume))
        cols["spacegroup_number"].append(sym.number)
        cols["spacegroup_symbol"].append(sym.symbol)
        cols["symprec"].append(sym.symprec)
        cols["prototype"].append(sym.prototype)
        cols["fingerprint"].append(sym.fingerprint)
        cols["details"].append(None if det is None else json.dumps(det, sort_keys=True, default=str))
        cols["formula"].append(comp.formula)
        cols["elements"].append(list(comp.elements))
        cols["counts"].append(list(comp.counts))
    vec3 = pa.list_(pa.float64(), 3)
    schema = pa.schema([
        ("structure_id", pa.int64()), ("composition_id", pa.int64()), ("material_id", pa.int64()),
        ("origin", pa.string()), ("method", pa.string()), ("parent_structure_id", pa.int64()),
        ("ingest_id", pa.int32()), ("run_id", pa.int32()), ("lattice", pa.list_(vec3, 3)),
        ("species", pa.list_(pa.string())), ("frac_coords", pa.list_(vec3)), ("n_sites", pa.int32()),
        ("volume", pa.float64()), ("spacegroup_number", pa.int32()), ("spacegroup_symbol", pa.string()),
        ("symprec", pa.float64()), ("prototype", pa.string()), ("fingerprint", pa.string()),
        ("details", pa.string()), ("formula", pa.string()), ("elements", pa.list_(pa.string())),
        ("counts", pa.list_(pa.int32()))])
    table = pa.table(cols, schema=schema)
    return table.append_column("created_at", pa.array([now] * n, pa.timestamp("us")))


def write_rows(con, rows: pa.Table) -> int:
    """Insert structure_rows() output in the caller's transaction: new compositions first, then
    the structures whose structure_id is not stored yet. Returns the structures inserted."""
    from .. import compositions  # noqa: PLC0415

    if rows.num_rows == 0:
        return 0
    df = pl.from_arrow(rows)
    comp = df.select("composition_id", "formula", "elements", pl.col("counts").cast(pl.List(pl.Int32)),
                     pl.col("elements").list.len().cast(pl.Int32).alias("n_elements"),
                     pl.col("counts").cast(pl.List(pl.Int64)).list.sum().alias("n_atoms"))
    _, taken = compositions.insert_new(con, comp)
    bad = df.filter(taken.is_not_null())
    if bad.height:
        raise StructureError(f"{bad['formula'][0]}: {compositions.collision_reason(taken.drop_nulls()[0])}")
    table = rows.drop_columns(["formula", "elements", "counts"])
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    con.register("_matstore_structures", table)
    try:
        got = con.execute(
            f"INSERT INTO structures ({cols}) SELECT DISTINCT ON (structure_id) {cols} "
            f"FROM _matstore_structures s WHERE NOT EXISTS "
            f"(SELECT 1 FROM structures t WHERE t.structure_id = s.structure_id)").fetchall()
    finally:
        con.unregister("_matstore_structures")
    return int(got[0][0]) if got else 0


@contextmanager
def _connection(con_or_store, write: bool):
    from ..store import Store  # noqa: PLC0415

    if isinstance(con_or_store, Store):
        if write:
            with con_or_store.transaction() as con:
                yield con
        else:
            with con_or_store.connect() as con:
                yield con
    else:
        yield con_or_store


def write_structures(con_or_store, structures: Sequence, origin: str, method: str, **kw) -> list[int]:
    """Store ordered pymatgen Structures (keywords as structure_rows); returns their ids in order."""
    rows = structure_rows(structures, origin, method, **kw)
    with _connection(con_or_store, write=True) as con:
        write_rows(con, rows)
    return rows.column("structure_id").to_pylist()


_COLUMNS = ("structure_id, composition_id, material_id, origin, method, parent_structure_id, ingest_id, "
            "run_id, lattice, species, frac_coords, n_sites, volume, spacegroup_number, spacegroup_symbol, "
            "symprec, prototype, fingerprint, details, created_at")


def structures_frame(con_or_store, *, origin: str | None = None, composition_ids: Iterable[int] | None = None,
                     run_id: int | None = None, ingest_id: int | None = None, ids: Iterable[int] | None = None,
                     limit: int | None = None) -> pl.DataFrame:
    """Stored rows matching every filter given (values bound, never spliced), by structure_id."""
    where, params = [], []
    if origin is not None:
        where.append("origin = ?"), params.append(origin)
    if run_id is not None:
        where.append("run_id = ?"), params.append(int(run_id))
    if ingest_id is not None:
        where.append("ingest_id = ?"), params.append(int(ingest_id))
    if composition_ids is not None:
        where.append("list_contains(?::BIGINT[], composition_id)"), params.append([int(i) for i in composition_ids])
    if ids is not None:
        where.append("list_contains(?::BIGINT[], structure_id)"), params.append([int(i) for i in ids])
    sql = f"SELECT {_COLUMNS} FROM structures"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY structure_id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with _connection(con_or_store, write=False) as con:
        return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())


def to_structure(row: dict):
    """A pymatgen Structure of one stored row (a dict with lattice, species, frac_coords)."""
    from pymatgen.core import Lattice, Structure  # noqa: PLC0415

    lattice = np.asarray(row["lattice"], float).reshape(3, 3)
    frac = np.asarray(row["frac_coords"], float).reshape(-1, 3)
    return Structure(Lattice(lattice), list(row["species"]), frac, coords_are_cartesian=False)


def read_structures(con_or_store, ids: Sequence[int]) -> list:
    """pymatgen Structures of structure ids, in the order given; an unknown id is a StructureError."""
    ids = [int(i) for i in ids]
    df = structures_frame(con_or_store, ids=ids)
    by_id = {r["structure_id"]: r for r in df.iter_rows(named=True)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise StructureError(f"no structure with id {missing[0]} in the store"
                             f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}")
    return [to_structure(by_id[i]) for i in ids]
