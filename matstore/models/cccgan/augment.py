"""The seed's augmentation, on images (exact: every output is the image of a real cell of the
same crystal): supercells (the cell doubled along two axes: x-y, y-z, x-z, kept where the atoms
fit the image), random translations (all atoms moved by lambda * (a, b, c), 0 < lambda < 1) and
axis swaps (two axes exchanged: lengths, the opposite angles and the coordinate columns; the
mirror image of the crystal, the same energy). ``augment`` fills every cell composition to a
target count with random translations and swaps of its real (and supercell) images."""

from __future__ import annotations

import numpy as np

from ...structures.image import MGMNO, OFFSET, ImageLayout, occupied

SUPERCELLS = ((2, 2, 1), (1, 2, 2), (2, 1, 2))
SWAPS = ((0, 1), (1, 2), (0, 2))


def _frac(images: np.ndarray) -> np.ndarray:
    return 1.5 * (images[:, 2:] - OFFSET)


def translate(images: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Every atom of image i moved by lam[i] * (a, b, c): fractional coordinates + lam[i], mod 1."""
    out = np.array(images, float)
    occ = occupied(out)
    p = (_frac(out) + np.asarray(lam, float)[:, None, None]) % 1.0
    out[:, 2:] = np.where(occ[..., None], (2.0 / 3.0) * p + OFFSET, 0.0)
    return out


def swap_axes(images: np.ndarray, i: int, j: int) -> np.ndarray:
    """Axes i and j exchanged: lengths i<->j, angles i<->j (alpha is opposite a), columns i<->j."""
    out = np.array(images, float)
    out[..., [i, j]] = out[..., [j, i]]
    return out


def supercell(image: np.ndarray, reps: tuple[int, int, int], layout: ImageLayout = MGMNO) -> np.ndarray | None:
    """The image of the cell repeated reps times along its axes, or None where the atoms do not fit."""
    x = np.asarray(image, float)
    occ = occupied(x[None])[0]
    counts = layout.counts(occ[None])[0] * int(np.prod(reps))
    if (counts > np.array(layout.rows)).any():
        return None
    out = np.zeros_like(x)
    out[0] = x[0] * np.asarray(reps)
    out[1] = x[1]
    shifts = np.array([(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])], float)
    p = _frac(x[None])[0]
    for e in range(len(layout.elements)):
        b = layout.block(e)
        rows = p[b.start - 2:b.stop - 2][occ[b.start - 2:b.stop - 2]]
        new = ((rows[None] + shifts[:, None]) / np.asarray(reps, float)).reshape(-1, 3)
        out[b.start:b.start + len(new)] = (2.0 / 3.0) * new + OFFSET
    return out


def with_supercells(images: np.ndarray, layout: ImageLayout = MGMNO) -> np.ndarray:
    """The images followed by every supercell of them (SUPERCELLS) that fits the image."""
    extra = [s for x in images for r in SUPERCELLS if (s := supercell(x, r, layout)) is not None]
    return np.concatenate([images, np.array(extra).reshape(-1, *images.shape[1:])])


def augment(images: np.ndarray, per_composition: int, rng: np.random.Generator,
            layout: ImageLayout = MGMNO) -> np.ndarray:
    """The images, their supercells, and random translations + axis swaps of them until each cell
    composition has per_composition images (those above it keep their real images only)."""
    base = with_supercells(np.asarray(images, float), layout)
    counts = layout.counts(occupied(base))
    keys, inv = np.unique(counts, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    parts = [base]
    for g in range(len(keys)):
        members = np.flatnonzero(inv == g)
        need = per_composition - len(members)
        if need <= 0:
            continue
        pick = base[rng.choice(members, need)]
        pick = translate(pick, rng.random(need))
        which = rng.integers(0, len(SWAPS) + 1, need)    # 0: no swap
        for s, (i, j) in enumerate(SWAPS, start=1):
            m = which == s
            pick[m] = swap_axes(pick[m], i, j)
        parts.append(pick)
    return np.concatenate(parts)
