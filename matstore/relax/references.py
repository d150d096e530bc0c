"""Elemental reference structures: what the potential's formation energies are measured from.

For each element, candidate structures are relaxed with the same potential and settings as the
compounds, and the lowest energy per atom is the element's reference (the potential's own
elemental ground state among the candidates). Candidates, in this order of source:
  ase-reference-state  ase.build.bulk(symbol): ASE's reference state (ase.data.reference_states,
                       crystal structure and lattice constant of the element's standard state)
  diatomic-in-box      H, N, O, F, Cl, Br, I: the X2 molecule (experimental bond length) alone in
                       a 12 Å cube, positions relaxed, cell fixed (molecular solids without vdW)
  prototype-fcc/bcc/sc/diamond  where ASE has no buildable state (B, P, S, Mn, Ga, Se, Te, U, ...):
                       simple prototypes at the covalent-radius volume, cell relaxed
A store may also hold elemental structures of its own (ingested, relaxed with the potential): the
stability module takes the lowest of those and these.
"""

from __future__ import annotations

import numpy as np

BOX = 12.0   # Å, the cube around a diatomic molecule
DIATOMIC_BOND = {"H": 0.741, "N": 1.098, "O": 1.208, "F": 1.412, "Cl": 1.988, "Br": 2.281, "I": 2.666}


def candidates(symbol: str) -> list[tuple[str, object]]:
    """(source, ase.Atoms) candidate structures of one element; raises ValueError for a symbol
    that is not an element."""
    from ase.build import bulk  # noqa: PLC0415
    from ase.data import atomic_numbers, covalent_radii  # noqa: PLC0415

    if symbol not in atomic_numbers or atomic_numbers[symbol] == 0:
        raise ValueError(f"{symbol!r} is not an element")
    out = []
    if symbol in DIATOMIC_BOND:
        out.append(("diatomic-in-box", _dimer(symbol)))
        return out
    try:
        atoms = bulk(symbol)
        from ase.data import reference_states  # noqa: PLC0415

        if reference_states[atomic_numbers[symbol]]["symmetry"] not in ("orthorhombic",):
            out.append(("ase-reference-state", atoms))
    except (ValueError, KeyError, TypeError, RuntimeError):
        pass
    if not out:
        r = covalent_radii[atomic_numbers[symbol]]
        d = 2 * r   # nearest-neighbour distance
        out += [("prototype-fcc", bulk(symbol, "fcc", a=d * np.sqrt(2))),
                ("prototype-bcc", bulk(symbol, "bcc", a=d * 2 / np.sqrt(3))),
                ("prototype-sc", bulk(symbol, "sc", a=d)),
                ("prototype-diamond", bulk(symbol, "diamond", a=d * 4 / np.sqrt(3)))]
    return out


def _dimer(symbol: str):
    from ase import Atoms  # noqa: PLC0415

    b = DIATOMIC_BOND[symbol]
    c = BOX / 2
    return Atoms(symbol * 2, positions=[[c - b / 2, c, c], [c + b / 2, c, c]], cell=[BOX] * 3, pbc=True)


def relaxes_cell(source: str) -> bool:
    """Whether a candidate's cell is relaxed (a molecule in a box keeps its box)."""
    return source != "diatomic-in-box"
