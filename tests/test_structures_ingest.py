"""Structure ingest on real files: every reader, rejects with reasons, a hostile CIF set."""

from __future__ import annotations

import json
import random

import numpy as np
import polars as pl
import pytest

from matstore.ingest import run
from matstore.sources import SourceError
from matstore.structures import read_structures, structures_frame
from matstore.structures.image import decode, encode

MATCHER = dict(stol=0.5, angle_tol=10, ltol=0.3)


@pytest.fixture(scope="module")
def perov_rows(shared_data):
    return pl.read_csv(shared_data / "structures/perov_5/val.csv", n_rows=30)


def _matcher():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(**MATCHER)


def test_table_with_cif_column_and_props(store, shared_data, perov_rows):
    path = shared_data / "structures/perov_5/val.csv"
    r = run(store, "structures", file=str(path), limit=30, props=["band_gap=ind_gap:eV"],
            source_name="perov5", kind="dft", method="GLLB-SC")
    assert (r.rows_seen, r.rows_kept, r.rows_rejected) == (30, 30, 0)
    got = store.query("SELECT sp.value FROM structure_properties sp JOIN structures s USING (structure_id) "
                      "JOIN materials m ON m.material_id = s.material_id "
                      "WHERE sp.name = 'band_gap' AND m.external_id = ?", [str(perov_rows["material_id"][3])])
    assert got.height == 1 and got["value"][0] == pytest.approx(perov_rows["ind_gap"][3])
    again = run(store, "structures", file=str(path), limit=30, props=["band_gap=ind_gap:eV"],
                source_name="perov5", kind="dft", method="GLLB-SC")
    assert again.rows_kept == 0 and again.rows_duplicate == 30
    assert store.query("SELECT count(*) AS n FROM structures")["n"][0] == 30


def test_cif_poscar_json_extxyz_files(store, tmp_path, perov_rows):
    from ase.io import write as ase_write
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    structs = [Structure.from_str(c, fmt="cif") for c in perov_rows["cif"][:4]]
    (tmp_path / "two.cif").write_text(perov_rows["cif"][0] + "\n" + perov_rows["cif"][1])
    structs[2].to(filename=str(tmp_path / "POSCAR"))
    (tmp_path / "s.json").write_text(json.dumps([structs[3].as_dict(), {"@module": "os", "@class": "system"}]))
    atoms = [AseAtomsAdaptor.get_atoms(s) for s in structs[:2]]
    atoms[0].info["gap"] = 1.25
    ase_write(str(tmp_path / "f.extxyz"), atoms, format="extxyz")
    counts = {}
    for name, kw in (("two.cif", {}), ("POSCAR", {}), ("s.json", {}), ("f.extxyz", {"props": ["band_gap=gap:eV"]})):
        r = run(store, "structures", file=str(tmp_path / name), **kw)
        counts[name] = (r.rows_seen, r.rows_kept, r.rows_rejected)
    assert counts == {"two.cif": (2, 2, 0), "POSCAR": (1, 1, 0), "s.json": (2, 1, 1), "f.extxyz": (2, 2, 0)}
    reason = store.query("SELECT reason FROM rejects")["reason"].to_list()
    assert reason == ["not a pymatgen Structure dict (lattice, sites)"]
    m = _matcher()
    df = structures_frame(store)
    back = read_structures(store, df["structure_id"].to_list())
    for s in structs[:4]:   # each source structure is stored (the extxyz ones again, as their own rows)
        assert any(m.fit(s, b) for b in back)
    assert store.query("SELECT value FROM properties WHERE name = 'band_gap'")["value"].to_list() == [1.25]


def test_mgmno_images_decode_and_encode(shared_data):
    images = np.load(shared_data / "structures/mgmno/mgmno_structures.npy", allow_pickle=False)
    m = _matcher()
    for im in images[:25]:
        s = decode(im)
        assert s.composition.chemical_system in {"Mg-Mn-O", "Mg-O", "Mn-O", "Mg-Mn"} or len(s) > 0
        assert m.fit(s, decode(encode(s)))
        assert np.allclose(encode(s)[:2], im[:2])
    with pytest.raises(ValueError, match="shape"):
        decode(np.zeros((29, 3)))
    with pytest.raises(ValueError, match="not a cell"):
        decode(np.zeros((30, 3)))


def test_reject_reasons_and_unreadable_files(store, tmp_path, perov_rows):
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    coords = [[0, 0, 0], [.5, .5, .5], [.5, .5, 0], [.5, 0, .5], [0, .5, .5]]
    partial = Structure(Lattice.cubic(3.9), [{"Sr": 0.6, "Ca": 0.4}, "Ti", "O", "O", "O"], coords)
    close = Structure(Lattice.cubic(3.9), ["Sr", "Ti", "O", "O", "O"], coords[:4] + [[.5, .05, .5]])
    cif = perov_rows["cif"][0]
    cases = {
        "partial": (str(CifWriter(partial)), {}, "partial occupancy"),
        "close": (str(CifWriter(close)), {}, "atoms too close: 0.195 A < 0.5 A"),
        "sites": (cif, {"max_sites": 3}, "too many sites: 5 > 3"),
        "unknown": (cif.replace("  N  N2", "  Xx  Xx2"), {}, "unknown element 'Xx'"),
        "volume": (cif.replace("_cell_length_a   4.27928426", "_cell_length_a   0.0"), {}, ""),
    }
    for name, (text, kw, _) in cases.items():
        (tmp_path / f"{name}.cif").write_text(text)
        r = run(store, "structures", file=str(tmp_path / f"{name}.cif"), **kw)
        assert (r.rows_seen, r.rows_rejected, r.rows_kept) == (1, 1, 0), name
    reasons = store.query("SELECT reason FROM rejects ORDER BY ingest_id")["reason"].to_list()
    for (name, (_, _, want)), got in zip(cases.items(), reasons):
        assert got.startswith(want) and got, (name, got)
    # asked for: the majority species takes the partial site, and the row says so
    r = run(store, "structures", file=str(tmp_path / "partial.cif"), allow_partial=True)
    assert r.rows_kept == 1
    row = structures_frame(store, ingest_id=r.ingest_id).row(0, named=True)
    assert row["species"][0] == "Sr" and "majority" in json.loads(row["details"])["disorder"]
    with pytest.raises(SourceError, match="does not exist"):
        run(store, "structures", file=str(tmp_path / "missing.cif"))
    with pytest.raises(SourceError, match="cannot tell the structure format"):
        (tmp_path / "x.dat").write_text("1")
        run(store, "structures", file=str(tmp_path / "x.dat"))


def _mutate(text: str, rng: random.Random) -> str:
    """One hostile edit of a CIF: truncation, garbage, huge or odd numbers, duplicated sites."""
    lines = text.splitlines()
    kind = rng.randrange(9)
    if kind == 0:
        return text[: rng.randrange(len(text))]
    if kind == 1:
        i = rng.randrange(len(lines))
        lines[i] = "".join(rng.choice("0123456789._-eE()?#'\" abcXYZ\t") for _ in range(rng.randrange(1, 80)))
    elif kind == 2:
        return text.replace("_cell_length_a", "_cell_length_a -").replace("_cell_length_b", "_cell_length_b 0 #")
    elif kind == 3:
        return text.replace("1.0\n", "nan\n").replace("0.5", "inf", 1)
    elif kind == 4:
        return text + "\n".join(lines[-1:] * 700)             # hundreds of sites on one spot
    elif kind == 5:
        return text.replace("_cell_angle_alpha   90.00000000", "_cell_angle_alpha   180.0")
    elif kind == 6:
        return "data_x\n" + "loop_\n_atom_site_fract_x\n" + "1e999\n" * 5
    elif kind == 7:
        return text.replace("_symmetry_space_group_name_H-M   'P 1'", "_symmetry_space_group_name_H-M   'Q 9'")
    else:
        return "".join(rng.choice([c, c, c, "\x00", "\u2603", "(("]) for c in text)
    return "\n".join(lines)


def test_hostile_cifs_lose_nothing_stored(store, tmp_path, shared_data, perov_rows):
    before = run(store, "structures", file=str(shared_data / "structures/perov_5/val.csv"), limit=10)
    snapshot = structures_frame(store).drop("created_at")
    rng = random.Random(26)
    texts = [_mutate(c, rng) for c in perov_rows["cif"][:10] for _ in range(6)]
    path = tmp_path / "hostile.cif"
    path.write_text("\n".join(t if t.lstrip().startswith("data_") else "data_h\n" + t for t in texts))
    r = run(store, "structures", file=str(path))
    assert r.rows_seen == r.rows_kept + r.rows_rejected + r.rows_duplicate and r.rows_rejected > 20
    n_rejects = store.query("SELECT count(*) AS n FROM rejects WHERE ingest_id = ?", [r.ingest_id])["n"][0]
    assert n_rejects == r.rows_rejected     # every reject is kept, with its reason
    assert structures_frame(store, ingest_id=before.ingest_id).drop("created_at").equals(snapshot)
    ok = structures_frame(store, ingest_id=r.ingest_id)
    for s in read_structures(store, ok["structure_id"].to_list()):   # what was kept is a sane cell
        assert s.volume > 0 and len(s) <= 500
