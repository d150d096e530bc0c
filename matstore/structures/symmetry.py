"""Symmetry of one structure through spglib: space group, prototype label, fingerprint.

- space group: spglib's symmetry dataset at ``symprec`` (Å, default 0.01, angle tolerance spglib's);
- prototype: ``<anonymous formula>_<space group number>_<Wyckoff letters of the distinct orbits,
  sorted>``, e.g. ``ABC3_221_abd`` for cubic SrTiO3; two structures of one prototype differ only by
  which elements sit where (and lattice/free parameters), which is what template prediction wants;
- fingerprint: a hash of the spglib-standardized primitive cell — species, lattice lengths and
  angles rounded to 1e-3 (Å, degrees), fractional positions rounded to 1e-3 and sorted — so the same
  structure gives the same fingerprint whatever its site order, origin or which equivalent cell
  was stored (the origin is put on each site of the rarest species in turn, the smallest wins).
  Where spglib finds no symmetry dataset the cell is Niggli-reduced by pymatgen instead. It is an
  exact-duplicate key, not a similarity: StructureMatcher is the judge of "the same crystal".
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("SPGLIB_WARNING", "OFF")   # spglib prints C-level warnings on stderr otherwise
DEFAULT_SYMPREC = 0.01
_ROUND = 3


@dataclass(frozen=True)
class Symmetry:
    number: int | None
    symbol: str | None
    prototype: str | None
    fingerprint: str
    symprec: float
    wyckoffs: tuple[str, ...] | None = None   # Wyckoff letter of each site (input order)


def _cell(structure):
    from ..compositions import Z_OF  # noqa: PLC0415

    return (np.asarray(structure.lattice.matrix, float), np.asarray(structure.frac_coords, float),
            np.array([Z_OF[str(s.specie.symbol if hasattr(s, "specie") else s)] for s in structure], int))


def _hash_cell(lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray) -> str:
    from pymatgen.core import Lattice  # noqa: PLC0415

    lat = Lattice(lattice)
    params = np.round(np.array(lat.abc + lat.angles), _ROUND) + 0.0
    # origin-free: each site of the rarest species (lowest Z on ties) in turn at the origin, the
    # smallest sorted site list wins (spglib may pick any of several equivalent origins)
    zs, n = np.unique(numbers, return_counts=True)
    anchor = zs[np.lexsort((zs, n))[0]]
    best = None
    for origin in positions[numbers == anchor]:
        pos = np.round(np.mod(np.round(positions - origin, _ROUND), 1.0), _ROUND) + 0.0
        pos[pos >= 1.0] = 0.0
        rows = sorted((int(z), *map(float, p)) for z, p in zip(numbers, pos))
        best = rows if best is None or rows < best else best
    text = repr((tuple(map(float, params)), best))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def analyse(structure, symprec: float = DEFAULT_SYMPREC) -> Symmetry:
    """Space group, prototype label and fingerprint of an ordered pymatgen Structure."""
    return analyse_cell(structure, symprec)[0]


def analyse_cell(structure, symprec: float = DEFAULT_SYMPREC):
    """(Symmetry, standardized primitive cell as (lattice, positions, atomic numbers))."""
    import spglib  # noqa: PLC0415

    lattice, positions, numbers = _cell(structure)
    cell = (lattice, positions, numbers)
    try:
        data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception:  # noqa: BLE001 - spglib raises on degenerate cells; no symmetry then
        data = None
    anon = structure.composition.reduced_composition.anonymized_formula
    if data is None:
        reduced = structure.get_reduced_structure("niggli")
        std = _cell(reduced)
        return Symmetry(None, None, None, _hash_cell(*std), symprec), std
    orbits = sorted({(int(e), w) for e, w in zip(data.equivalent_atoms, data.wyckoffs)})
    letters = "".join(sorted(w for _, w in orbits))
    prototype = f"{anon}_{int(data.number)}_{letters}"
    std = spglib.standardize_cell(cell, to_primitive=True, no_idealize=False, symprec=symprec)
    std = tuple(np.asarray(a) for a in std) if std is not None else cell
    return Symmetry(int(data.number), str(data.international), prototype, _hash_cell(*std), symprec,
                    tuple(str(w) for w in data.wyckoffs)), std


def relabelled(sym: Symmetry, std_cell, z_map: dict[int, int], scale: float) -> Symmetry:
    """The Symmetry of a structure made from one with (sym, std_cell) by a one-to-one change of
    elements (z_map: atomic number -> atomic number) and a uniform lattice scale: the space group
    and prototype are unchanged (a bijective relabelling keeps every symmetry operation), only the
    fingerprint is recomputed — without spglib."""
    lattice, positions, numbers = std_cell
    mapped = np.array([z_map[int(z)] for z in numbers], int)
    return Symmetry(sym.number, sym.symbol, sym.prototype, _hash_cell(lattice * scale, positions, mapped),
                    sym.symprec, sym.wyckoffs)
