"""The "simplex" path: a composition's hull energy as the linear program min sum(l_i E_i) with
sum(l_i x_i) = x, l >= 0, solved for all candidates at once by a batched revised simplex method
from the elements, over their systems' points found by packed element-set keys."""

from __future__ import annotations

import numpy as np

from .systems import BLOCK, NUMERICAL_TOL, PAD, pack, pack_cols, ranges, subsets


def candidates(hulls, rows_all, ranks, nel, frac, hull, parts_row, parts_prod, parts_frac):
    """The simplex path of Hulls.evaluate for rows_all (1..9 elements); returns the rows it left."""
    if not len(rows_all):
        return np.zeros(0, np.int64)
    key = pack(ranks[rows_all], nel[rows_all])
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    keys = ranks[rows_all[first]]                       # (S, K) each system's ranks
    ks = nel[rows_all[first]]
    ns, off, mem = _members(hulls, keys, ks)
    ck, cn = ks[inv], ns[inv]
    unary = np.flatnonzero(ck == 1)
    if len(unary):
        r = keys[inv[unary], 0]
        hull[rows_all[unary]] = hulls.el_energy[r]
        parts_row.append(rows_all[unary])
        parts_prod.append(hulls.n_phases + r)
        parts_frac.append(np.ones(len(unary)))
    left = []
    for k in np.unique(ck[ck >= 2]):
        k = int(k)
        rows_k = np.flatnonzero(ck == k)
        rows_k = rows_k[np.argsort(cn[rows_k], kind="stable")]
        a = 0
        while a < len(rows_k):      # chunks of similar point counts, ~BLOCK values each
            n_hi = int(cn[rows_k[min(a + 4096, len(rows_k)) - 1]])
            b = min(len(rows_k), a + 4096, a + max(16, BLOCK // ((k + n_hi) * k)))
            sel, a = rows_k[a:b], b
            rows = rows_all[sel]
            sys_ids, local = np.unique(inv[sel], return_inverse=True)
            pts, en, prod = _points(hulls, keys, sys_ids, ns, off, mem, k)
            basis, lam, ok = solve(pts[local], en[local], frac[rows, :k])
            left.append(rows[~ok])
            if not ok.any():
                continue
            g = np.flatnonzero(ok)
            basis, lam, lg = basis[g], lam[g], local[g]
            keep = np.abs(lam) > NUMERICAL_TOL
            e_b = en[lg[:, None], basis]
            hull[rows[g]] = np.where(keep, lam * e_b, 0.0).sum(axis=1)
            rr, cc = np.nonzero(keep)
            parts_row.append(rows[g][rr])
            parts_prod.append(prod[lg[rr], basis[rr, cc]])
            parts_frac.append(lam[rr, cc])
    return np.concatenate(left) if left else np.zeros(0, np.int64)

def _members(hulls, keys: np.ndarray, ks: np.ndarray):
    """Hull-candidate compounds of each system (rows of keys, ks elements; <= 9 elements), as
    CSR (count per system, offsets, flat compound indices): every element subset of >= 2
    looked up at once among the packed group keys."""
    sys_of, mem = [], []
    for k in np.unique(ks[ks >= 2]):
        k = int(k)
        js = np.flatnonzero(ks == k)
        sub = np.stack([pack_cols(keys[js], c) for c in subsets(k)], axis=1)   # (J, 2^k-k-1)
        pos = np.minimum(np.searchsorted(hulls.group_keys, sub), max(len(hulls.group_keys) - 1, 0))
        hit = (hulls.group_keys[pos] == sub) if len(hulls.group_keys) else np.zeros(sub.shape, bool)
        jj, cc = np.nonzero(hit)
        g = pos[jj, cc]
        glen = hulls.group_offsets[g + 1] - hulls.group_offsets[g]
        sys_of.append(np.repeat(js[jj], glen))
        mem.append(hulls.group_members[ranges(hulls.group_offsets[g], glen)])
    sys_of = np.concatenate(sys_of) if sys_of else np.zeros(0, np.int64)
    mem = np.concatenate(mem) if mem else np.zeros(0, np.int64)
    order = np.argsort(sys_of, kind="stable")
    ns = np.bincount(sys_of, minlength=len(keys))
    off = np.zeros(len(keys) + 1, np.int64)
    np.cumsum(ns, out=off[1:])
    return ns, off, mem[order]

def _points(hulls, keys, sys_ids, ns, off, mem, k: int):
    """Padded points of systems sys_ids (all with k elements): (S, k + n, k) atom fractions in
    system order (the elements first), (S, k + n) energies (padding: never enters), products."""
    s_n = len(sys_ids)
    lens = ns[sys_ids]
    n = int(lens.max()) if s_n else 0
    pts = np.zeros((s_n, k + n, k))
    pts[:, np.arange(k), np.arange(k)] = 1.0
    rk = keys[sys_ids, :k]
    en = np.full((s_n, k + n), 1e30)
    en[:, :k] = hulls.el_energy[rk]
    prod = np.full((s_n, k + n), -1, np.int64)
    prod[:, :k] = hulls.n_phases + rk
    if n:
        flat = mem[ranges(off[sys_ids], lens)]
        srow = np.repeat(np.arange(s_n), lens)
        spos = k + np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
        pr = hulls.phase_ranks[flat]
        col = (rk[srow][:, None, :] < pr[:, :, None]).sum(axis=2)   # place in the system's order
        t, e = np.nonzero(pr < PAD)
        pts[srow[t], spos[t], col[t, e]] = hulls.phase_frac[flat][t, e]
        en[srow, spos] = hulls.phase_energy[flat]
        prod[srow, spos] = flat
    return pts, en, prod

RC_TOL = 1e-12    # a point enters the basis when it lies this far below the current plane
MAX_PIVOTS = 64


def solve(pts: np.ndarray, en: np.ndarray, x: np.ndarray):
    """Batched simplex method for min sum(l E) s.t. sum(l P) = x, l >= 0, one LP per row: pts
    (m, n, k) points (the k elements first), en (m, n), x (m, k) atom fractions. Starts from the
    elements (l = x) and pivots in the point farthest below the plane through the basis until
    none is below it (that plane then supports the hull: the optimum). Returns the basis (m, k)
    point indices, its amounts (m, k) and which rows settled."""
    m, n, k = pts.shape
    basis = np.tile(np.arange(k), (m, 1))
    lam = x.astype(np.float64).copy()
    done = np.zeros(m, bool)
    # revised simplex: the inverse of the basis matrix (columns: the basis points) kept up to date
    # by one rank-1 update per pivot; the elements' basis is the identity
    binv = np.tile(np.eye(k), (m, 1, 1))
    rows = np.arange(m)                   # the rows pa/ea hold (compacted when half have settled)
    pa, ea = pts, en
    live = np.ones(m, bool)               # over pa's rows: still pivoting
    for _ in range(MAX_PIVOTS):
        n_live = int(live.sum())
        if n_live == 0:
            break
        if n_live < len(rows) // 2:
            keep = np.flatnonzero(live)
            rows, pa, ea, live = rows[keep], pa[keep], ea[keep], np.ones(len(keep), bool)
        ar = np.arange(len(rows))
        y = np.einsum("ak,akj->aj", ea[ar[:, None], basis[rows]], binv[rows])  # chemical potentials
        d = ea - np.einsum("ank,ak->an", pa, y)                        # below the plane: < 0
        j = d.argmin(axis=1)
        go = live & (d[ar, j] < -RC_TOL)
        done[rows[live & ~go]] = True
        live = go
        at = np.flatnonzero(live)
        if not len(at):
            break
        g, j = rows[at], j[at]
        bi = binv[g]
        u = np.einsum("akj,aj->ak", bi, pa[at, j])                     # the entering point in the basis
        lam_a = lam[g]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(u > 1e-12, lam_a / u, np.inf)
        r = ratio.argmin(axis=1)
        ai = np.arange(len(g))
        t = ratio[ai, r]
        ok = np.isfinite(t)
        if not ok.all():                  # no leaving point: numerically lost, left to qhull
            live[at[~ok]] = False
            g, j, bi, u, lam_a, r, t = (v[ok] for v in (g, j, bi, u, lam_a, r, t))
            ai = ai[:len(g)]
        lam_a = lam_a - t[:, None] * u
        lam_a[ai, r] = t
        lam[g] = np.maximum(lam_a, 0.0)
        basis[g, r] = j
        row = bi[ai, r] / u[ai, r][:, None]
        bi = bi - u[:, :, None] * row[:, None, :]
        bi[ai, r] = row
        binv[g] = bi
    return basis, lam, done
