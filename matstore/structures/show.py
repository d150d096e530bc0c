"""A stored structure for a person: text summary, CIF/POSCAR files."""

from __future__ import annotations

import json
from pathlib import Path

from .store import StructureError, read_structures


def describe(store, structure_id: int) -> str:
    """Formula, origin and provenance, lattice, space group and sites of one structure."""
    with store.connect() as con:
        rows = con.execute("SELECT formula, origin, method, source, external_id, spacegroup_symbol, "
                           "spacegroup_number, prototype, parent_structure_id, parent_formula, run_id, "
                           "ingest_id, details FROM structure_catalog WHERE structure_id = ?",
                           [int(structure_id)]).fetchall()
    if not rows:
        raise StructureError(f"no structure with id {structure_id} in the store")
    (formula, origin, method, source, ext, sg, sgn, proto, parent, parent_formula, run_id, ingest_id,
     details) = rows[0]
    s = read_structures(store, [structure_id])[0]
    lines = [f"structure {structure_id}: {formula} ({s.composition.formula}), {len(s)} sites",
             f"origin: {origin} ({method})"
             + (f", source {source} {ext}" if source else "")
             + (f", ingest {ingest_id}" if ingest_id is not None else "")
             + (f", run {run_id}" if run_id is not None else "")
             + (f", parent {parent} ({parent_formula})" if parent is not None else ""),
             f"space group: {sg or '-'} ({sgn or '-'}), prototype {proto or '-'}",
             f"lattice: a={s.lattice.a:.4f} b={s.lattice.b:.4f} c={s.lattice.c:.4f} A, "
             f"alpha={s.lattice.alpha:.2f} beta={s.lattice.beta:.2f} gamma={s.lattice.gamma:.2f} deg, "
             f"V={s.volume:.3f} A^3"]
    lines += [f"  {v[0]:10.5f} {v[1]:10.5f} {v[2]:10.5f}" for v in s.lattice.matrix]
    if details:
        lines.append(f"details: {json.dumps(json.loads(details), sort_keys=True)}")
    lines.append("sites (fractional):")
    lines += [f"  {i:3d} {site.specie.symbol:3s} {site.frac_coords[0]:9.5f} {site.frac_coords[1]:9.5f} "
              f"{site.frac_coords[2]:9.5f}" for i, site in enumerate(s)]
    return "\n".join(lines)


def write_file(store, structure_id: int, path: str, fmt: str, overwrite: bool = False) -> Path:
    """Write one structure as CIF or POSCAR; an existing file is kept unless overwrite."""
    from pymatgen.io.cif import CifWriter  # noqa: PLC0415
    from pymatgen.io.vasp import Poscar  # noqa: PLC0415

    out = Path(path)
    if out.exists() and not overwrite:
        raise StructureError(f"{out} exists; give --force to overwrite it")
    if not out.parent.is_dir():
        raise StructureError(f"{out.parent} is not a folder")
    s = read_structures(store, [structure_id])[0]
    text = str(CifWriter(s)) if fmt == "cif" else Poscar(s).get_str()
    out.write_text(text)
    return out


__all__ = ["describe", "write_file"]
