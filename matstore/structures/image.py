"""The composition-conditioned crystal GAN's 30x3 image of a Mg-Mn-O cell (seed 003, Kim et al.
2020), both ways.

Row 0: a, b, c / 30 (Å); row 1: alpha, beta, gamma / 180 (degrees); rows 2-9: up to 8 Mg sites,
rows 10-17: up to 8 Mn sites, rows 18-29: up to 12 O sites. A site row holds fractional
coordinates rescaled p' = (2/3) p + 1/6, so an atom at the origin is not padding; an all-zero row is
padding. Decode: p = 1.5 (p' - 1/6).
"""

from __future__ import annotations

import numpy as np

SLOTS = (("Mg", 2, 8), ("Mn", 10, 8), ("O", 18, 12))   # element, first row, rows
SHAPE = (30, 3)
LENGTH_SCALE = 30.0
ANGLE_SCALE = 180.0


def decode(image: np.ndarray):
    """One (30, 3) image -> a pymatgen Structure; ValueError naming the problem if it is not one."""
    from pymatgen.core import Lattice, Structure  # noqa: PLC0415

    image = np.asarray(image, dtype=float)
    if image.shape != SHAPE:
        raise ValueError(f"image shape {image.shape}, expected {SHAPE}")
    if not np.isfinite(image).all():
        raise ValueError("image holds NaN/inf")
    abc, angles = image[0] * LENGTH_SCALE, image[1] * ANGLE_SCALE
    if not ((abc > 0).all() and (angles > 0).all() and (angles < 180).all()):
        raise ValueError(f"cell lengths {abc.round(3).tolist()} / angles {angles.round(2).tolist()} are not a cell")
    species, coords = [], []
    for element, first, n in SLOTS:
        rows = image[first:first + n]
        for row in rows[np.any(rows != 0, axis=1)]:
            species.append(element)
            coords.append(1.5 * (row - 1.0 / 6.0))
    if not species:
        raise ValueError("image holds no sites")
    return Structure(Lattice.from_parameters(*abc, *angles), species, np.array(coords))


def encode(structure) -> np.ndarray:
    """A Mg-Mn-O Structure -> its (30, 3) image (the inverse of decode up to the cell's setting)."""
    image = np.zeros(SHAPE)
    image[0] = np.array(structure.lattice.abc) / LENGTH_SCALE
    image[1] = np.array(structure.lattice.angles) / ANGLE_SCALE
    for element, first, n in SLOTS:
        frac = [np.mod(site.frac_coords, 1.0) for site in structure if site.specie.symbol == element]
        if len(frac) > n:
            raise ValueError(f"{len(frac)} {element} sites, the image holds {n}")
        for i, p in enumerate(frac):
            image[first + i] = (2.0 / 3.0) * p + 1.0 / 6.0
    others = {site.specie.symbol for site in structure} - {e for e, _, _ in SLOTS}
    if others:
        raise ValueError(f"elements {sorted(others)} have no rows in the Mg-Mn-O image")
    return image
