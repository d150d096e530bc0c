"""Every structure of perov_5/val.csv and of the Mg-Mn-O images ingests, exports back to CIF and
matches its source under StructureMatcher (slow tier)."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from matstore.ingest import run
from matstore.structures import structures_frame, to_structure
from matstore.structures.image import decode
from _store_data import new_store

pytestmark = pytest.mark.slow


def _cif_back(row) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(to_structure(row)))


def _check_all(store, ingest_id, sources_by_id):
    """Export each stored structure of the ingest to CIF, parse it, match it to its source."""
    from pymatgen.core import Structure
    from pymatgen.core.structure_matcher import StructureMatcher

    m = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3, primitive_cell=False, attempt_supercell=False)
    df = structures_frame(store, ingest_id=ingest_id)
    ext = dict(store.query("SELECT material_id, external_id FROM materials WHERE ingest_id = ?",
                           [ingest_id]).iter_rows())
    assert df.height == len(sources_by_id)
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in df.iter_rows(named=True):
            back = Structure.from_str(_cif_back(row), fmt="cif")
            source = sources_by_id[ext[row["material_id"]]]
            if not m.fit(source, back):
                bad.append(ext[row["material_id"]])
    assert not bad, bad[:5]


def test_every_perov5_structure_round_trips(tmp_path, shared_data):
    from pymatgen.core import Structure

    path = shared_data / "structures/perov_5/val.csv"
    df = pl.read_csv(path)
    store = new_store(tmp_path / "p.duckdb")
    r = run(store, "structures", file=str(path), source_name="perov5", kind="dft", progress=False)
    assert (r.rows_seen, r.rows_kept, r.rows_rejected) == (df.height, df.height, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sources = {str(i): Structure.from_str(c, fmt="cif") for i, c in zip(df["material_id"], df["cif"])}
    _check_all(store, r.ingest_id, sources)


def test_every_mgmno_structure_round_trips(tmp_path, shared_data):
    folder = shared_data / "structures/mgmno"
    images = np.load(folder / "mgmno_structures.npy", allow_pickle=False)
    names = (folder / "mgmno_names.txt").read_text().splitlines()
    store = new_store(tmp_path / "m.duckdb")
    r = run(store, "structures", file=str(folder / "mgmno_structures.npy"), progress=False)
    assert (r.rows_seen, r.rows_kept, r.rows_rejected) == (len(images), len(images), 0)
    _check_all(store, r.ingest_id, {f"{i}:{n.strip()}": decode(im) for i, (im, n) in enumerate(zip(images, names))})
