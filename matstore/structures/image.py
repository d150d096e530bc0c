"""The CCCGAN's 30x3 crystal image and its exact inverse (seed 003, Figure S1).

Row 0: cell lengths a, b, c / LENGTH_SCALE (30 A); row 1: angles alpha, beta, gamma / ANGLE_SCALE
(180 deg); then one row per site, in blocks per element (Mg 8, Mn 8, O 12 rows: ImageLayout),
holding fractional coordinates rescaled p' = (2/3) p + 1/6 so an atom at the origin is not
padding; unused rows are zero. Decoding inverts it: p = 1.5 (p' - 1/6).

Exact inverse: encode keeps fractional coordinates already in [0, 1] as they are (the shared data
holds p = 1.0) and wraps others into [0, 1); decode(encode(s)) has s's lattice parameters, species
and fractional coordinates (orientation is not stored: the lattice is rebuilt from its
parameters, pymatgen's convention), and encode(decode(img)) == img for any real image.

A generated image is continuous: its sites are chosen by counts (the classifier's composition) and,
where given, by the per-row atom probabilities of the classifier (most probable rows first);
coordinates are clipped to [1/6, 5/6] first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LENGTH_SCALE = 30.0
ANGLE_SCALE = 180.0
OFFSET = 1.0 / 6.0      # p' = (2/3) p + 1/6


class ImageError(ValueError):
    """A structure that does not fit the image (species, counts), or an image that is no cell."""


@dataclass(frozen=True)
class ImageLayout:
    elements: tuple[str, ...] = ("Mg", "Mn", "O")
    rows: tuple[int, ...] = (8, 8, 12)

    @property
    def n_sites(self) -> int:
        return int(sum(self.rows))

    @property
    def height(self) -> int:
        return 2 + self.n_sites

    def block(self, i: int) -> slice:
        start = 2 + sum(self.rows[:i])
        return slice(start, start + self.rows[i])

    def counts(self, occupied: np.ndarray) -> np.ndarray:
        """(n, n_sites) bool rows -> (n, n_elements) atoms per element."""
        occ = np.asarray(occupied, bool)
        return np.stack([occ[:, self.block(i).start - 2:self.block(i).stop - 2].sum(1)
                         for i in range(len(self.elements))], 1)


MGMNO = ImageLayout()


def encode(structure, layout: ImageLayout = MGMNO) -> np.ndarray:
    """A pymatgen Structure -> (height, 3) float64 image; ImageError if it does not fit."""
    img = np.zeros((layout.height, 3))
    lat = structure.lattice
    img[0] = np.asarray(lat.abc) / LENGTH_SCALE
    img[1] = np.asarray(lat.angles) / ANGLE_SCALE
    species = [site.specie.symbol if hasattr(site.specie, "symbol") else str(site.specie)
               for site in structure]
    other = sorted(set(species) - set(layout.elements))
    if other or not structure.is_ordered:
        raise ImageError(f"structure {structure.composition.formula}: species {other or 'disordered'} "
                         f"outside the image's {'/'.join(layout.elements)}")
    frac = np.asarray(structure.frac_coords, float)
    inside = ((frac >= 0) & (frac <= 1)).all(1)
    frac = np.where(inside[:, None], frac, frac % 1.0)
    for i, el in enumerate(layout.elements):
        idx = [j for j, s in enumerate(species) if s == el]
        if len(idx) > layout.rows[i]:
            raise ImageError(f"structure {structure.composition.formula}: {len(idx)} {el} sites, the "
                             f"image holds {layout.rows[i]}")
        b = layout.block(i)
        img[b.start:b.start + len(idx)] = (2.0 / 3.0) * frac[idx] + OFFSET
    return img


def occupied(images: np.ndarray) -> np.ndarray:
    """(n, height, 3) real images -> (n, n_sites) bool: rows holding an atom (any nonzero)."""
    return (np.asarray(images)[:, 2:] != 0).any(2)


def lattice_parameters(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, height, 3) -> lengths (n, 3) in A and angles (n, 3) in degrees."""
    x = np.asarray(images, float)
    return x[:, 0] * LENGTH_SCALE, x[:, 1] * ANGLE_SCALE


def cell_volume(lengths: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Volumes (n,) in A^3 from lattice parameters; NaN where the angles make no cell."""
    ca, cb, cg = np.cos(np.radians(angles)).T
    g = 1 - ca ** 2 - cb ** 2 - cg ** 2 + 2 * ca * cb * cg
    with np.errstate(invalid="ignore"):
        return np.where(g > 0, np.prod(lengths, 1) * np.sqrt(np.where(g > 0, g, 0)), np.nan)


def select_rows(counts: np.ndarray, layout: ImageLayout = MGMNO,
                atom_prob: np.ndarray | None = None) -> np.ndarray:
    """(n, n_sites) bool: per element block the counts[:, i] rows taken (highest atom_prob first,
    else the first rows); ImageError where a count exceeds its block."""
    counts = np.asarray(counts, np.int64)
    n = len(counts)
    if (counts < 0).any() or (counts > np.array(layout.rows)).any():
        raise ImageError(f"atom counts beyond the image's rows {layout.rows}")
    sel = np.zeros((n, layout.n_sites), bool)
    for i in range(len(layout.elements)):
        b = layout.block(i)
        lo, hi = b.start - 2, b.stop - 2
        if atom_prob is None:
            rank = np.broadcast_to(np.arange(hi - lo), (n, hi - lo))
        else:
            order = np.argsort(-np.asarray(atom_prob)[:, lo:hi], axis=1, kind="stable")
            rank = np.argsort(order, axis=1)
        sel[:, lo:hi] = rank < counts[:, i:i + 1]
    return sel


def decode(image: np.ndarray, layout: ImageLayout = MGMNO, sites: np.ndarray | None = None):
    """One (height, 3) image -> pymatgen Structure. sites: (n_sites,) bool rows to take (default:
    the nonzero rows: a real image); coordinates are clipped to [1/6, 5/6] before inverting."""
    from pymatgen.core import Lattice, Structure  # noqa: PLC0415

    x = np.asarray(image, float)
    if x.shape != (layout.height, 3) or not np.isfinite(x).all():
        raise ImageError(f"image of shape {x.shape}: expected finite ({layout.height}, 3)")
    (a, b, c), (al, be, ga) = x[0] * LENGTH_SCALE, x[1] * ANGLE_SCALE
    if not np.isfinite(cell_volume(x[None, 0] * LENGTH_SCALE, x[None, 1] * ANGLE_SCALE))[0] or min(a, b, c) <= 0:
        raise ImageError(f"image lattice a={a:.3f} b={b:.3f} c={c:.3f} alpha={al:.2f} beta={be:.2f} "
                         f"gamma={ga:.2f} is not a cell")
    take = occupied(x[None])[0] if sites is None else np.asarray(sites, bool)
    species, frac = [], []
    for i, el in enumerate(layout.elements):
        blk = layout.block(i)
        rows = np.flatnonzero(take[blk.start - 2:blk.stop - 2]) + blk.start
        species += [el] * len(rows)
        frac.append(1.5 * (np.clip(x[rows], OFFSET, 1 - OFFSET) - OFFSET))
    if not species:
        raise ImageError("image holds no atom")
    return Structure(Lattice.from_parameters(a, b, c, al, be, ga), species, np.concatenate(frac))


def load_images(path) -> np.ndarray:
    """The shared (n, 30, 3) float64 image file (numpy, no pickle), shape checked."""
    x = np.load(path, allow_pickle=False)
    if x.ndim != 3 or x.shape[1:] != (MGMNO.height, 3) or x.dtype.kind != "f":
        raise ImageError(f"{path}: expected a float array (n, {MGMNO.height}, 3), got {x.dtype} {x.shape}")
    return x
