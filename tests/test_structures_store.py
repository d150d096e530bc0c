"""The structures table and its API on real perovskites: write, read back, dedupe, merge, export."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matstore.structures import (StructureError, analyse, check, read_structures, structures_frame,
                                 write_structures)
from _store_data import new_store

MATCHER = dict(stol=0.5, angle_tol=10, ltol=0.3)


@pytest.fixture(scope="module")
def perovskites(shared_data):
    from pymatgen.core import Structure

    df = pl.read_csv(shared_data / "structures/perov_5/val.csv", n_rows=40)
    return [check(Structure.from_str(c, fmt="cif"))[0] for c in df["cif"]]


def test_write_read_round_trip_and_dedupe(store, perovskites):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    ids = write_structures(store, perovskites, "known", "cif", details={"test": 1})
    assert len(set(ids)) == len(ids) == 40
    back = read_structures(store, ids[::-1])[::-1]   # in the order asked for
    m = StructureMatcher(**MATCHER)
    assert all(m.fit(a, b) for a, b in zip(perovskites, back))
    assert all(np.allclose(a.lattice.matrix, b.lattice.matrix) for a, b in zip(perovskites, back))
    # the same structures again, and with sites in another order: nothing new
    shuffled = [s.copy() for s in perovskites]
    for s in shuffled:
        s.sort(key=lambda site: -site.frac_coords[0])
    assert write_structures(store, shuffled, "known", "cif") == ids
    assert store.query("SELECT count(*) AS n FROM structures")["n"][0] == 40
    # another origin is another row, pointing at its parent
    t = write_structures(store, perovskites[:2], "template", "template-substitution", parents=ids[:2])
    row = structures_frame(store, ids=t[:1]).row(0, named=True)
    assert row["parent_structure_id"] == ids[0] and row["origin"] == "template"
    cat = store.query("SELECT * FROM structure_catalog WHERE structure_id = ?", [t[0]]).row(0, named=True)
    assert cat["parent_formula"] == cat["formula"] == perovskites[0].composition.reduced_formula


def test_symmetry_of_cubic_perovskite():
    from pymatgen.core import Lattice, Structure

    s = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                  [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]])
    sym = analyse(s)
    assert (sym.number, sym.symbol) == (221, "Pm-3m")
    assert sym.prototype.startswith("ABC3_221_") and len(sym.prototype.split("_")[2]) == 3
    # a supercell is the same crystal: same primitive cell, same fingerprint
    assert analyse(s * (2, 1, 1)).fingerprint == sym.fingerprint
    moved = s.copy()
    moved.translate_sites(range(5), [0.01, 0, 0])
    assert analyse(moved).fingerprint == sym.fingerprint     # within symprec: one structure


def test_unknown_id_and_bad_origin_are_clear_errors(store, perovskites):
    with pytest.raises(StructureError, match="no structure with id 42"):
        read_structures(store, [42])
    with pytest.raises(StructureError, match="origin 'guessed' is not one of"):
        write_structures(store, perovskites[:1], "guessed", "x")


def test_structures_merge_and_export(tmp_path, perovskites):
    from matstore.export import export_parquet
    from matstore.merge import merge

    a, b = new_store(tmp_path / "a.duckdb"), new_store(tmp_path / "b.duckdb")
    write_structures(a, perovskites[:10], "known", "cif")
    write_structures(b, perovskites[5:15], "known", "cif")
    merge(a, b.path)
    assert a.query("SELECT count(*) AS n FROM structures")["n"][0] == 15
    merge(a, b.path)   # again: nothing new
    assert a.query("SELECT count(*) AS n FROM structures")["n"][0] == 15
    export_parquet(a, tmp_path / "out")
    back = pl.read_parquet(tmp_path / "out" / "structures" / "*.parquet")
    mine = structures_frame(a)
    back = back.sort("structure_id")
    assert back["structure_id"].to_list() == mine["structure_id"].to_list()
    assert np.allclose(np.array(back["lattice"].to_list()), np.array(mine["lattice"].to_list()))
