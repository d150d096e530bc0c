"""The "qhull" path: pymatgen's own hull construction per chemical system (scipy ConvexHull with
"Qt i" and an extra point above everything; facets holding it or vertical dropped), and placing
candidates on it (the first facet whose barycentric coordinates are all >= -1e-9)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .systems import BLOCK, IN_SIMPLEX_TOL, NUMERICAL_TOL, PAD


@dataclass
class SystemHull:
    ranks: np.ndarray             # the system's element ranks, ascending (coordinate order)
    points: np.ndarray            # product index of each hull point (elements first)
    energy: np.ndarray            # energy per atom of each point
    facets: np.ndarray            # (F, k) point indices
    aug_inv: np.ndarray           # (F, k, k) inverse of [fractions[1:], 1] per facet


def build(hulls, ranks: tuple) -> SystemHull:
    """The hull of one system (element ranks, ascending) over hulls' known phases."""
    from scipy.spatial import ConvexHull  # noqa: PLC0415

    k = len(ranks)
    rk = np.asarray(ranks, np.int64)
    el_points = hulls.n_phases + rk
    if k == 1:
        return SystemHull(rk, el_points, hulls.el_energy[rk], np.zeros((1, 1), np.int64),
                          np.ones((1, 1, 1)))
    comp = hulls.compounds(ranks)
    x = np.zeros((k + len(comp), k))
    x[np.arange(k), np.arange(k)] = 1.0
    if len(comp):
        pr = hulls.phase_ranks[comp]
        m = pr < PAD
        rows = np.nonzero(m)[0]
        x[k + rows, np.searchsorted(rk, pr[m])] = hulls.phase_frac[comp][m]
    energy = np.concatenate([hulls.el_energy[rk], hulls.phase_energy[comp]])
    data = np.column_stack([x[:, 1:], energy])
    extra = np.full(k, 1.0 / k)
    extra[-1] = data.max() + 1          # pymatgen's extra point, above every facet
    data = np.vstack([data, extra])
    simplices = ConvexHull(data, qhull_options="Qt i").simplices
    simplices = simplices[(simplices != len(data) - 1).all(axis=1)]
    aug = data[simplices]               # (F, k, k): [fractions[1:], 1] per vertex
    aug[:, :, -1] = 1.0
    keep = np.abs(np.linalg.det(aug)) > 1e-14
    facets, aug = simplices[keep], aug[keep]
    return SystemHull(rk, np.concatenate([el_points, comp]), energy, facets, np.linalg.inv(aug))


def place(h: SystemHull, frac: np.ndarray):
    """Candidates (atom fractions in h.ranks order) in one system -> (candidate row, product,
    fraction) of each decomposition term and the hull energy per candidate."""
    m, k = frac.shape
    if k == 1:
        return (np.arange(m), np.full(m, h.points[0]), np.ones(m), np.full(m, h.energy[0]))
    aug = np.column_stack([frac[:, 1:], np.ones(m)])
    n_f = len(h.facets)
    choice = np.zeros(m, np.int64)
    bary = np.empty((m, k))
    step = max(1, BLOCK // max(n_f * k, 1))
    for a in range(0, m, step):
        b = np.einsum("mi,fij->mfj", aug[a:a + step], h.aug_inv)        # (block, F, k)
        worst = b.min(axis=2)
        inside = worst >= -IN_SIMPLEX_TOL
        # pymatgen takes the first facet holding the point; numerically lost points the least bad
        c = np.where(inside.any(axis=1), inside.argmax(axis=1), worst.argmax(axis=1))
        choice[a:a + step] = c
        bary[a:a + step] = b[np.arange(len(c)), c]
    verts = h.facets[choice]                                             # (m, k) point indices
    keep = np.abs(bary) > NUMERICAL_TOL
    e_hull = np.where(keep, bary * h.energy[verts], 0.0).sum(axis=1)
    r, col = np.nonzero(keep)
    return r, h.points[verts[r, col]], bary[r, col], e_hull
