"""The lower convex hull of known phases, one per chemical system, evaluated at array speed.

Semantics are pymatgen's PhaseDiagram (`_compute`, `get_decomp_and_e_above_hull(allow_negative=
True)`): a system of k elements has the points (atom fractions, energy per atom) of its phases'
ground states, the elements at min(0, their own entries) eV/atom, and only compounds below the
elements' tie plane (formation energy < -1e-11); a composition's hull energy is the lowest energy
of a mix of those points with its composition, its decomposition that mix (amounts > 1e-8).

Two ways to the same answer (tests check both against pymatgen on real OQMD energies):
- "simplex" (default): that lowest mix is a linear program per candidate (min sum l_i E_i with
  sum l_i x_i = x, l >= 0). All candidates are solved at once with a batched revised simplex
  method starting from the elements, a handful of pivots each, over their systems' points padded
  into arrays; the systems' points are found by looking every element subset up among packed
  element-set keys, so there is no Python loop per system and no hull to build.
- "qhull": pymatgen's own construction per system (scipy ConvexHull with "Qt i" and an extra
  point above everything; facets holding it or vertical dropped; a composition takes the first
  facet whose barycentric coordinates are all >= -1e-9), built once per system and cached. Used
  for systems of more than 9 elements and for any candidate the simplex does not settle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from .. import compositions

NUMERICAL_TOL = 1e-8          # pymatgen PhaseDiagram.numerical_tol: smaller amounts are dropped
IN_SIMPLEX_TOL = NUMERICAL_TOL / 10
FORMATION_TOL = 1e-11         # pymatgen PhaseDiagram.formation_energy_tol
_PAD = 1 << 30                # rank of an empty slot: sorts after every element
_BLOCK = 1 << 22              # candidates x facets x k values per einsum block

# element rank in pymatgen's Element order (electronegativity, then symbol): the coordinate order
_ORDER = sorted((s for s in compositions.SYMBOLS if s),
                key=lambda s: (compositions._SORT_X[compositions.Z_OF[s]], s))
RANK = np.full(compositions.MAX_Z + 1, _PAD, np.int64)
RANK[[compositions.Z_OF[s] for s in _ORDER]] = np.arange(len(_ORDER))
Z_OF_RANK = np.array([compositions.Z_OF[s] for s in _ORDER], np.int64)
N_EL = len(_ORDER)


@dataclass
class HullResult:
    """Per candidate (input order): hull energy, energy above it (NaN where the energy is), and the
    decomposition as CSR lists: products of row i are product[offsets[i]:offsets[i+1]]."""

    hull_energy: np.ndarray
    e_above_hull: np.ndarray
    offsets: np.ndarray           # int64 (m + 1)
    product: np.ndarray           # int64 index into Hulls.product_ids / product_formulas
    fraction: np.ndarray          # atom fraction of each product

    def decomposition(self, hulls: "Hulls") -> pa.ListArray:
        """list<struct<composition_id, formula, fraction>> column (the stability table's)."""
        if hulls._formulas_arrow is None:
            hulls._formulas_arrow = pa.array(hulls.product_formulas, pa.string())
        structs = pa.StructArray.from_arrays(
            [pa.array(hulls.product_ids[self.product]),
             hulls._formulas_arrow.take(pa.array(self.product)),
             pa.array(self.fraction)], ["composition_id", "formula", "fraction"])
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), structs)


@dataclass
class _SystemHull:
    ranks: np.ndarray             # the system's element ranks, ascending (coordinate order)
    points: np.ndarray            # product index of each hull point (elements first)
    energy: np.ndarray            # energy per atom of each point
    facets: np.ndarray            # (F, k) point indices
    aug_inv: np.ndarray           # (F, k, k) inverse of [fractions[1:], 1] per facet


_PACK_MAX = 9                 # elements a packed system key holds (7 bits per element rank)


def _pack(ranks: np.ndarray, nel: np.ndarray) -> np.ndarray:
    """One int64 per row of sorted padded ranks with <= 9 elements (else -1): sum (r+1) << 7i."""
    r = ranks[:, :_PACK_MAX]
    v = np.where(r < _PAD, r + 1, 0).astype(np.int64)
    key = (v << (7 * np.arange(r.shape[1], dtype=np.int64))).sum(axis=1)
    return np.where(nel <= _PACK_MAX, key, -1)


def _pack_cols(ranks: np.ndarray, cols: tuple) -> np.ndarray:
    return sum((ranks[:, c].astype(np.int64) + 1) << (7 * i) for i, c in enumerate(cols))


@lru_cache(maxsize=None)
def _subsets(k: int) -> tuple:
    """Column index tuples of every subset of 2..k of k columns (ascending, so keys stay sorted)."""
    return tuple(c for n in range(2, k + 1) for c in itertools.combinations(range(k), n))


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenated aranges starts[i] .. starts[i] + lens[i] (no Python loop)."""
    lens = np.asarray(lens, np.int64)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    return np.repeat(np.asarray(starts, np.int64) - (np.cumsum(lens) - lens), lens) + np.arange(total)


def _padded_ranks(z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ranks sorted ascending with _PAD for empty slots, atom fractions in that order)."""
    z = np.asarray(z, np.int64)
    c = np.asarray(counts, np.float64)
    present = (z > 0) & (c > 0)
    r = np.where(present, RANK[np.where(present, z, 0)], _PAD)
    order = np.argsort(r, axis=1, kind="stable")
    r = np.take_along_axis(r, order, 1)
    c = np.take_along_axis(np.where(present, c, 0.0), order, 1)
    tot = c.sum(axis=1, keepdims=True)
    return r, c / np.where(tot > 0, tot, 1.0)


class Hulls:
    """The known phases of one reference (ground state per composition, elements at 0 eV/atom
    unless an entry is lower) and their hulls per chemical system, built on first use and cached."""

    def __init__(self, composition_id, z, counts, energy, formula):
        ids = np.asarray(composition_id, np.int64)
        energy = np.asarray(energy, np.float64)
        ok = np.isfinite(energy)
        ids, energy = ids[ok], energy[ok]
        formula = np.asarray(formula, object)[ok]
        ranks, frac = _padded_ranks(np.asarray(z)[ok], np.asarray(counts)[ok])
        # ground state per composition: lowest energy first, then the first row of each id
        order = np.lexsort((energy, ids))
        first = np.ones(len(order), bool)
        first[1:] = ids[order][1:] != ids[order][:-1]
        g = order[first]
        self.phase_ids, self.phase_energy = ids[g], energy[g]
        self.phase_ranks, self.phase_frac = ranks[g], frac[g]
        n = len(g)
        nel = (self.phase_ranks < _PAD).sum(axis=1)
        # element references: min(0, lowest entry of the pure element)
        self.el_energy = np.zeros(N_EL)
        unary = np.flatnonzero(nel == 1)
        np.minimum.at(self.el_energy, self.phase_ranks[unary, 0], self.phase_energy[unary])
        ref = np.where(self.phase_ranks < _PAD, self.el_energy[np.minimum(self.phase_ranks, N_EL - 1)], 0)
        self.phase_form = self.phase_energy - (ref * self.phase_frac).sum(axis=1)
        # products: the phases, then one per element (its entry's composition where it has one)
        el = [compositions.parse(s) for s in _ORDER]
        self.product_ids = np.concatenate([self.phase_ids, [c.composition_id for c in el]]).astype(np.int64)
        self.product_formulas = np.concatenate([formula[g], [c.formula for c in el]]).astype(object)
        # compounds that can be hull vertices, grouped by their element set
        cand = np.flatnonzero((nel >= 2) & (self.phase_form < -FORMATION_TOL))
        self._hull_compounds = cand
        self._groups: dict[tuple, np.ndarray] | None = None
        # the same as sorted packed keys (CSR) for the vectorised lookup: group g's compounds are
        # _gmem[_goff[g]:_goff[g + 1]]
        pk = _pack(self.phase_ranks[cand], nel[cand])
        order = np.argsort(pk, kind="stable")
        self._gkey, start = np.unique(pk[order], return_index=True)
        self._goff = np.append(start, len(order)).astype(np.int64)
        self._gmem = cand[order]
        self._n = n
        self._cache: dict[tuple, _SystemHull] = {}
        self._formulas_arrow: pa.Array | None = None

    @property
    def n_phases(self) -> int:
        return self._n

    @property
    def groups(self) -> dict[tuple, np.ndarray]:
        """element-set ranks -> the hull-candidate compounds of exactly that set (qhull path)."""
        if self._groups is None:
            self._groups = {}
            cand = self._hull_compounds
            if len(cand):
                keys, inv = np.unique(self.phase_ranks[cand], axis=0, return_inverse=True)
                inv = inv.reshape(-1)
                srt = np.argsort(inv, kind="stable")
                bounds = np.concatenate([[0], np.cumsum(np.bincount(inv, minlength=len(keys)))])
                for j, key in enumerate(keys):
                    self._groups[tuple(int(v) for v in key if v < _PAD)] = cand[srt[bounds[j]:bounds[j + 1]]]
        return self._groups

    # --- one chemical system -------------------------------------------------------------------
    def system(self, ranks: tuple) -> _SystemHull:
        h = self._cache.get(ranks)
        if h is None:
            h = self._cache[ranks] = self._build(ranks)
        return h

    def _compounds(self, ranks: tuple) -> np.ndarray:
        k = len(ranks)
        if k > 12:   # fewer groups than subsets: test each group
            s = set(ranks)
            parts = [v for key, v in self.groups.items() if set(key) <= s]
        else:
            parts = [self.groups[sub] for n in range(2, k + 1)
                     for sub in itertools.combinations(ranks, n) if sub in self.groups]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _build(self, ranks: tuple) -> _SystemHull:
        from scipy.spatial import ConvexHull  # noqa: PLC0415

        k = len(ranks)
        rk = np.asarray(ranks, np.int64)
        el_points = self._n + rk
        if k == 1:
            return _SystemHull(rk, el_points, self.el_energy[rk], np.zeros((1, 1), np.int64),
                               np.ones((1, 1, 1)))
        comp = self._compounds(ranks)
        x = np.zeros((k + len(comp), k))
        x[np.arange(k), np.arange(k)] = 1.0
        if len(comp):
            pr = self.phase_ranks[comp]
            m = pr < _PAD
            rows = np.nonzero(m)[0]
            x[k + rows, np.searchsorted(rk, pr[m])] = self.phase_frac[comp][m]
        energy = np.concatenate([self.el_energy[rk], self.phase_energy[comp]])
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
        return _SystemHull(rk, np.concatenate([el_points, comp]), energy, facets, np.linalg.inv(aug))

    # --- candidates ------------------------------------------------------------------------------
    def evaluate(self, z, counts, energy, method: str = "simplex") -> HullResult:
        """Hull energy, energy above hull and decomposition of compositions (padded z/counts rows)
        with their energies per atom (NaN allowed: the decomposition is still given).

        method "simplex": the hull energy as the linear program min sum(l_i E_i) over the system's
        points with sum(l_i x_i) = x, l >= 0, solved for all candidates at once (batched simplex
        pivots from the elements; no hull is built); "qhull": the hull facets of each system, as
        pymatgen builds them. Same answers; a candidate the simplex does not settle goes to qhull."""
        energy = np.asarray(energy, np.float64)
        m = len(energy)
        ranks, frac = _padded_ranks(z, counts)
        hull = np.full(m, np.nan)
        parts_row, parts_prod, parts_frac = [], [], []
        if method not in ("simplex", "qhull"):
            raise ValueError(f"method must be 'simplex' or 'qhull', not {method!r}")
        nel = (ranks < _PAD).sum(axis=1)
        todo = np.flatnonzero(nel >= 1)
        if method == "simplex" and len(todo):
            fast = todo[nel[todo] <= _PACK_MAX]
            todo = np.concatenate([todo[nel[todo] > _PACK_MAX],
                                   self._simplex_all(fast, ranks, nel, frac, hull, parts_row,
                                                     parts_prod, parts_frac)])
        if len(todo):   # qhull: one hull per system, built once and cached
            keys, inv = np.unique(ranks[todo], axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            srt = np.argsort(inv, kind="stable")
            cut = np.flatnonzero(np.diff(inv[srt])) + 1
            for sel in np.split(srt, cut):
                sysr = tuple(int(v) for v in keys[inv[sel[0]]] if v < _PAD)
                rows = todo[sel]
                r, p, f, e = _place(self.system(sysr), frac[rows, :len(sysr)])
                hull[rows] = e
                parts_row.append(rows[r])
                parts_prod.append(p)
                parts_frac.append(f)
        row = np.concatenate(parts_row) if parts_row else np.zeros(0, np.int64)
        prod = np.concatenate(parts_prod) if parts_prod else np.zeros(0, np.int64)
        fr = np.concatenate(parts_frac) if parts_frac else np.zeros(0)
        order = np.lexsort((-fr, row))      # by candidate, largest fraction first
        row, prod, fr = row[order], prod[order], fr[order]
        offsets = np.zeros(m + 1, np.int64)
        np.cumsum(np.bincount(row, minlength=m), out=offsets[1:])
        above = energy - hull
        above[np.abs(above) < IN_SIMPLEX_TOL] = 0.0   # on the hull, not a rounding error off it
        return HullResult(hull, above, offsets, prod, fr)

    def _simplex_all(self, rows_all, ranks, nel, frac, hull, parts_row, parts_prod, parts_frac):
        """The simplex path of evaluate for rows_all (1..9 elements); returns the rows it left."""
        if not len(rows_all):
            return np.zeros(0, np.int64)
        key = _pack(ranks[rows_all], nel[rows_all])
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        keys = ranks[rows_all[first]]                       # (S, K) each system's ranks
        ks = nel[rows_all[first]]
        ns, off, mem = self._members(keys, ks)
        ck, cn = ks[inv], ns[inv]
        unary = np.flatnonzero(ck == 1)
        if len(unary):
            r = keys[inv[unary], 0]
            hull[rows_all[unary]] = self.el_energy[r]
            parts_row.append(rows_all[unary])
            parts_prod.append(self._n + r)
            parts_frac.append(np.ones(len(unary)))
        left = []
        for k in np.unique(ck[ck >= 2]):
            k = int(k)
            rows_k = np.flatnonzero(ck == k)
            rows_k = rows_k[np.argsort(cn[rows_k], kind="stable")]
            a = 0
            while a < len(rows_k):      # chunks of similar point counts, ~_BLOCK values each
                n_hi = int(cn[rows_k[min(a + 4096, len(rows_k)) - 1]])
                b = min(len(rows_k), a + 4096, a + max(16, _BLOCK // ((k + n_hi) * k)))
                sel, a = rows_k[a:b], b
                rows = rows_all[sel]
                sys_ids, local = np.unique(inv[sel], return_inverse=True)
                pts, en, prod = self._points(keys, sys_ids, ns, off, mem, k)
                basis, lam, ok = _simplex(pts[local], en[local], frac[rows, :k])
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

    def _members(self, keys: np.ndarray, ks: np.ndarray):
        """Hull-candidate compounds of each system (rows of keys, ks elements; <= 9 elements), as
        CSR (count per system, offsets, flat compound indices): every element subset of >= 2
        looked up at once among the packed group keys."""
        sys_of, mem = [], []
        for k in np.unique(ks[ks >= 2]):
            k = int(k)
            js = np.flatnonzero(ks == k)
            sub = np.stack([_pack_cols(keys[js], c) for c in _subsets(k)], axis=1)   # (J, 2^k-k-1)
            pos = np.minimum(np.searchsorted(self._gkey, sub), max(len(self._gkey) - 1, 0))
            hit = (self._gkey[pos] == sub) if len(self._gkey) else np.zeros(sub.shape, bool)
            jj, cc = np.nonzero(hit)
            g = pos[jj, cc]
            glen = self._goff[g + 1] - self._goff[g]
            sys_of.append(np.repeat(js[jj], glen))
            mem.append(self._gmem[_ranges(self._goff[g], glen)])
        sys_of = np.concatenate(sys_of) if sys_of else np.zeros(0, np.int64)
        mem = np.concatenate(mem) if mem else np.zeros(0, np.int64)
        order = np.argsort(sys_of, kind="stable")
        ns = np.bincount(sys_of, minlength=len(keys))
        off = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(ns, out=off[1:])
        return ns, off, mem[order]

    def _points(self, keys, sys_ids, ns, off, mem, k: int):
        """Padded points of systems sys_ids (all with k elements): (S, k + n, k) atom fractions in
        system order (the elements first), (S, k + n) energies (padding: never enters), products."""
        s_n = len(sys_ids)
        lens = ns[sys_ids]
        n = int(lens.max()) if s_n else 0
        pts = np.zeros((s_n, k + n, k))
        pts[:, np.arange(k), np.arange(k)] = 1.0
        rk = keys[sys_ids, :k]
        en = np.full((s_n, k + n), 1e30)
        en[:, :k] = self.el_energy[rk]
        prod = np.full((s_n, k + n), -1, np.int64)
        prod[:, :k] = self._n + rk
        if n:
            flat = mem[_ranges(off[sys_ids], lens)]
            srow = np.repeat(np.arange(s_n), lens)
            spos = k + np.arange(len(flat)) - np.repeat(np.cumsum(lens) - lens, lens)
            pr = self.phase_ranks[flat]
            col = (rk[srow][:, None, :] < pr[:, :, None]).sum(axis=2)   # place in the system's order
            t, e = np.nonzero(pr < _PAD)
            pts[srow[t], spos[t], col[t, e]] = self.phase_frac[flat][t, e]
            en[srow, spos] = self.phase_energy[flat]
            prod[srow, spos] = flat
        return pts, en, prod

    def evaluate_known(self) -> tuple[np.ndarray, HullResult]:
        """Every known phase (ground state per composition) against the hull: (ids, result)."""
        return self.phase_ids, self.evaluate(
            np.where(self.phase_ranks < _PAD, Z_OF_RANK[np.minimum(self.phase_ranks, N_EL - 1)], 0),
            self.phase_frac, self.phase_energy)


RC_TOL = 1e-12    # a point enters the basis when it lies this far below the current plane
_MAX_PIVOTS = 64


def _simplex(pts: np.ndarray, en: np.ndarray, x: np.ndarray):
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
    for _ in range(_MAX_PIVOTS):
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


def _place(h: _SystemHull, frac: np.ndarray):
    """Candidates (atom fractions in h.ranks order) in one system -> (candidate row, product,
    fraction) of each decomposition term and the hull energy per candidate."""
    m, k = frac.shape
    if k == 1:
        return (np.arange(m), np.full(m, h.points[0]), np.ones(m), np.full(m, h.energy[0]))
    aug = np.column_stack([frac[:, 1:], np.ones(m)])
    n_f = len(h.facets)
    choice = np.zeros(m, np.int64)
    bary = np.empty((m, k))
    step = max(1, _BLOCK // max(n_f * k, 1))
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
