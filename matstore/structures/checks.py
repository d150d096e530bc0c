"""What makes a structure storable: one reason per rejected structure, never an exception.

Rules (in this order; the first that fails is the reason):
- ``too many sites``: more than ``Limits.max_sites`` (default 500) sites — checked before anything
  costs O(n^2);
- ``unknown element``: a site whose species is not an element of the periodic table (X, D, Dummy);
- ``partial occupancy``: a disordered site, unless ``allow_partial``, where each site takes its
  majority species (recorded by the caller as ``details.disorder = 'majority'``);
- ``not finite``: a NaN or infinite lattice or coordinate;
- ``volume``: a cell volume that is not > ``min_volume`` (default 0.1 Å^3 per site: zero, negative
  or collapsed cells);
- ``atoms too close``: two sites (periodic images included) closer than ``min_distance`` Å
  (default 0.5 Å: shorter than any bond, H2's is 0.74 Å, so only overlapping atoms fail).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SITES = 500
MIN_DISTANCE = 0.5
MIN_VOLUME_PER_SITE = 0.1


@dataclass(frozen=True)
class Limits:
    max_sites: int = MAX_SITES
    min_distance: float = MIN_DISTANCE
    min_volume_per_site: float = MIN_VOLUME_PER_SITE
    allow_partial: bool = False


def ordered(structure):
    """The structure with each partially occupied site replaced by its majority species."""
    from pymatgen.core import Structure  # noqa: PLC0415

    species = [max(site.species.items(), key=lambda kv: (kv[1], str(kv[0])))[0] for site in structure]
    return Structure(structure.lattice, species, structure.frac_coords)


def _element_symbols(structure) -> list[str] | str:
    from ..compositions import Z_OF  # noqa: PLC0415

    out = []
    for site in structure:
        for sp in site.species:
            sym = getattr(sp, "symbol", None) or str(sp)
            el = getattr(sp, "element", None)
            name = str(getattr(el, "symbol", sym)) if el is not None else sym
            if name not in Z_OF:
                return f"unknown element {sym!r}"
            out.append(name)
    return out


def min_distance(structure) -> float:
    """Shortest distance between two sites, periodic images of a site included (Å)."""
    n = len(structure)
    lat = structure.lattice.get_lll_reduced_lattice()
    shortest = float(min(lat.abc))
    if n < 2:
        return shortest
    d = structure.distance_matrix
    d = d[~np.eye(n, dtype=bool)]
    return float(min(shortest, d.min()))


def check(structure, limits: Limits = Limits()) -> tuple[object | None, str | None]:
    """(storable structure, None) or (None, reason). The structure returned is ordered (partial
    sites resolved when limits.allow_partial) and holds plain elements."""
    try:
        n = len(structure)
        if n == 0:
            return None, "no sites"
        if n > limits.max_sites:
            return None, f"too many sites: {n} > {limits.max_sites}"
        names = _element_symbols(structure)
        if isinstance(names, str):
            return None, names
        if not structure.is_ordered:
            if not limits.allow_partial:
                return None, "partial occupancy (ask for it with --allow-partial: majority species per site)"
            structure = ordered(structure)
        else:
            structure = structure.copy()
            structure.remove_oxidation_states()
        lat = np.asarray(structure.lattice.matrix, float)
        frac = np.asarray(structure.frac_coords, float)
        if not (np.isfinite(lat).all() and np.isfinite(frac).all()):
            return None, "not finite: lattice or coordinates hold NaN/inf"
        vol = float(np.linalg.det(lat))
        if not vol > limits.min_volume_per_site * n:
            return None, f"volume {vol:.4g} A^3 is not > {limits.min_volume_per_site} A^3 per site"
        dmin = min_distance(structure)
        if dmin < limits.min_distance:
            return None, f"atoms too close: {dmin:.3f} A < {limits.min_distance} A"
        return structure, None
    except Exception as e:  # noqa: BLE001 - a hostile structure is a reject, never a crash
        return None, f"invalid structure: {type(e).__name__}: {str(e)[:200]}"
