"""The validity kernel: SMACT's charge-neutrality and electronegativity rules as bitset
programs over a batch (see the package docstring for the method), and the most probable
oxidation-state assignment as a max-plus program over totals."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .sets import Tables, tables

_WORD = 64


def _shift_or(r: np.ndarray, cnt: np.ndarray, states: np.ndarray, n_states: np.ndarray) -> np.ndarray:
    """OR over an element's states of r << (count * state), truncated to 64 bits."""
    out = np.zeros_like(r)
    for m in range(states.shape[1]):
        sh = cnt * states[:, m]
        ok = (m < n_states) & (sh < _WORD)
        out |= np.where(ok, r << np.minimum(sh, _WORD - 1).astype(np.uint64), np.uint64(0))
    return out


def _python_bits(states, counts, target_sign: int | None) -> int:
    """Unbounded bitset of reachable totals: states per element, one state each."""
    r = 1
    for st, c in zip(states, counts):
        nr = 0
        for s in st:
            if target_sign is None or (s > 0) == (target_sign > 0):
                nr |= r << (c * abs(s) if target_sign is not None else c * s)
        r = nr
    return r


@lru_cache(maxsize=1 << 16)
def exact_one(zs: tuple[int, ...], cs: tuple[int, ...], oxidation_set: str) -> tuple[bool, bool]:
    """(charge_neutral, electronegativity_balanced) with unbounded Python-int bitsets."""
    t = tables(oxidation_set)
    sts = [t.states[z] for z in zs]
    if not all(sts):
        return False, False
    lo = [s[0] for s in sts]
    shifted = [[x - m for x in s] for s, m in zip(sts, lo)]
    target = -sum(c * m for c, m in zip(cs, lo))
    cn = target >= 0 and bool((_python_bits(shifted, cs, None) >> target) & 1)
    en = False
    if cn and not np.isnan(t.eneg[list(zs)]).any():
        order = sorted(range(len(zs)), key=lambda i: t.eneg[zs[i]])
        for p in range(len(order) - 1):
            if not t.eneg[zs[order[p]]] < t.eneg[zs[order[p + 1]]]:
                continue
            left, right = order[: p + 1], order[p + 1:]
            rc = _python_bits([sts[i] for i in left], [cs[i] for i in left], +1)
            ra = _python_bits([sts[i] for i in right], [cs[i] for i in right], -1)
            if rc & ra:
                en = True
                break
    return cn, en


def check_unique(z: np.ndarray, c: np.ndarray, t: Tables) -> dict[str, np.ndarray]:
    n, k = z.shape
    z = z.astype(np.int64)
    c = np.where(z > 0, c, 0).astype(np.int64)
    present = z > 0
    nel = present.sum(1)
    fast = (nel == 1) | t.metal[z].all(1)
    supported = fast | t.known[z].all(1)
    has_states = t.has_states[z].all(1)
    eneg_ok = ~np.isnan(t.eneg[z]).any(1)
    cu = c.astype(np.uint64)

    # charge neutrality: signed totals, shifted so every step is a left shift
    target = -(c * t.min_state[z]).sum(1)
    r = np.ones(n, np.uint64)
    for p in range(k):
        zp = z[:, p]
        r = _shift_or(r, cu[:, p], t.shifted[zp].astype(np.uint64), t.n_all[zp])
    fits = (target >= 0) & (target < _WORD)
    hit = (r >> np.clip(target, 0, _WORD - 1).astype(np.uint64)) & np.uint64(1)
    neutral = has_states & (target >= 0) & fits & (hit == 1)
    need_exact = has_states & (target >= _WORD)

    # electronegativity: sort by Pauling X, prefix cations, suffix anions
    order = np.argsort(t.eneg[z], axis=1, kind="stable")
    zs = np.take_along_axis(z, order, 1)
    cs = np.take_along_axis(c, order, 1)
    csu = cs.astype(np.uint64)
    xs = t.eneg[zs]
    rc = np.empty((k, n), np.uint64)
    mc = np.empty((k, n), np.int64)
    acc, accmax = np.ones(n, np.uint64), np.zeros(n, np.int64)
    for p in range(k):
        zp = zs[:, p]
        acc = _shift_or(acc, csu[:, p], t.pos[zp].astype(np.uint64), t.n_pos[zp])
        accmax = accmax + cs[:, p] * t.max_pos[zp]
        rc[p], mc[p] = acc, accmax
    balanced = np.zeros(n, bool)
    uncertain = np.zeros(n, bool)
    acc, accmax = np.ones(n, np.uint64), np.zeros(n, np.int64)
    for p in range(k - 1, 0, -1):  # anions = positions p.., cations = ..p-1
        zp = zs[:, p]
        acc = _shift_or(acc, csu[:, p], t.neg[zp].astype(np.uint64), t.n_neg[zp])
        accmax = accmax + cs[:, p] * t.max_neg[zp]
        split = (p < nel) & (xs[:, p - 1] < xs[:, p])
        meet = (rc[p - 1] & acc) != 0
        balanced |= split & meet
        big = np.minimum(mc[p - 1], accmax) >= _WORD
        uncertain |= split & big  # truncated bits may hide a meeting total
    balanced &= has_states & eneg_ok
    need_exact |= has_states & eneg_ok & uncertain & ~balanced
    # beyond compositions' bounds (only in stores written before them): unsupported, never the
    # exact bitsets, which grow with the counts (Fe2147483647O2147483646 needed > 3.5 GB)
    from ..compositions import MAX_ATOMS, MAX_COUNT

    absurd = (c > MAX_COUNT).any(1) | (c.sum(1) > MAX_ATOMS) | (c < 0).any(1)
    need_exact &= ~absurd
    neutral &= ~absurd
    balanced &= ~absurd
    supported &= ~absurd
    for i in np.flatnonzero(need_exact):
        keep = present[i]
        cn, en = exact_one(tuple(int(v) for v in z[i, keep]), tuple(int(v) for v in c[i, keep]),
                            t.oxidation_set)
        neutral[i], balanced[i] = cn, en
    balanced &= neutral  # a balanced assignment is charge-neutral by construction
    return dict(charge_neutral=neutral, electronegativity_balanced=balanced,
                smact_valid=fast | balanced, supported=supported)




# ---- the oxidation-state assignment: a max-plus program over charge totals ----------------------

_CHUNK = 8192      # rows per dense pass: (positions, rows, width) float arrays stay ~ tens of MB
_DENSE_MAX = 128   # widest dense pass (totals 0..127); wider rows take the dict program


def _side_step(prev: np.ndarray, zp: np.ndarray, cp: np.ndarray, vals: np.ndarray, weights: np.ndarray,
               n_vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One element of one side: best score per total after giving it one of its states (by index,
    most reported first; a tie keeps the earlier state), and the state index chosen per total."""
    m, width = prev.shape
    cur = np.full_like(prev, -np.inf)
    back = np.zeros(prev.shape, np.int8)
    rows = np.arange(m)
    padded = np.concatenate([np.full_like(prev, -np.inf), prev], 1)  # totals below 0: unreachable
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)  # [r, w] = prev shifted by width - w
    for j in range(int(n_vals[zp].max()) if m else 0):
        sh = np.where(j < n_vals[zp], np.minimum(cp * vals[zp, j], width), width)
        cand = windows[rows, width - sh]
        cand += (cp * weights[zp, j])[:, None]
        better = cand > cur
        np.copyto(cur, cand, where=better)
        back[better] = j
    return cur, back


def _assign_dense(t: Tables, zs: np.ndarray, cs: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by electronegativity whose meeting totals are < width -> (states, found)."""
    m, k = zs.shape
    xs, nel, r = t.eneg[zs], (zs > 0).sum(1), np.arange(m)
    cat = np.empty((k - 1, m, width))
    b_cat = np.empty((k - 1, m, width), np.int8)
    acc = np.full((m, width), -np.inf)
    acc[:, 0] = 0.0
    for p in range(k - 1):  # cations = positions ..p
        acc, b_cat[p] = _side_step(acc, zs[:, p], cs[:, p], t.pos, t.pos_w, t.n_pos)
        cat[p] = acc
    b_an = np.zeros((k, m, width), np.int8)
    acc = np.full((m, width), -np.inf)
    acc[:, 0] = 0.0
    best, best_p, best_t = np.full(m, -np.inf), np.zeros(m, np.int64), np.zeros(m, np.int64)
    for p in range(k - 1, 0, -1):  # anions = positions p.., cations = ..p-1
        acc, b_an[p] = _side_step(acc, zs[:, p], cs[:, p], t.neg, t.neg_w, t.n_neg)
        total = cat[p - 1] + acc
        tt = total.argmax(1)
        v = total[r, tt]
        better = (p < nel) & (xs[:, p - 1] < xs[:, p]) & (v > best)
        best[better], best_p[better], best_t[better] = v[better], p, tt[better]
    found = np.isfinite(best)
    st = np.zeros((m, k), np.int64)
    tc = best_t.copy()
    for q in range(k - 2, -1, -1):  # walk the cations back from the cut
        on = found & (q < best_p)
        s = t.pos[zs[:, q], b_cat[q][r, tc]]
        st[on, q] = s[on]
        tc = np.where(on, tc - cs[:, q] * s, tc)
    ta = best_t.copy()
    for q in range(1, k):  # and the anions forward from it
        on = found & (q >= best_p)
        s = t.neg[zs[:, q], b_an[q][r, ta]]
        st[on, q] = -s[on]
        ta = np.where(on, ta - cs[:, q] * s, ta)
    return st, found


def assign_one(t: Tables, zs: list[int], cs: list[int]) -> list[int]:
    """The dense program on dicts (unbounded totals) for one row sorted by electronegativity; the
    same visiting order, so the same ties win."""
    def step(prev, z, c, vals, weights, n_vals):
        cur, back = {}, {}
        for j in range(int(n_vals[z])):
            s, w = int(vals[z, j]), c * weights[z, j]
            for tot, v in prev.items():
                cand = v + w
                if tot + c * s not in cur or cand > cur[tot + c * s]:
                    cur[tot + c * s], back[tot + c * s] = cand, j
        return cur, back

    k = len(zs)
    cat, b_cat, acc = [], [], {0: 0.0}
    for p in range(k - 1):
        acc, b = step(acc, zs[p], cs[p], t.pos, t.pos_w, t.n_pos)
        cat.append(acc)
        b_cat.append(b)
    b_an, acc = [None] * k, {0: 0.0}
    best, best_p, best_t = -np.inf, 0, 0
    for p in range(k - 1, 0, -1):
        acc, b_an[p] = step(acc, zs[p], cs[p], t.neg, t.neg_w, t.n_neg)
        if not t.eneg[zs[p - 1]] < t.eneg[zs[p]]:
            continue
        for tot in sorted(set(cat[p - 1]) & set(acc)):
            if cat[p - 1][tot] + acc[tot] > best:
                best, best_p, best_t = cat[p - 1][tot] + acc[tot], p, tot
    st = [0] * k
    if not np.isfinite(best):
        return st
    tot = best_t
    for q in range(best_p - 1, -1, -1):
        st[q] = int(t.pos[zs[q], b_cat[q][tot]])
        tot -= cs[q] * st[q]
    tot = best_t
    for q in range(best_p, k):
        s = int(t.neg[zs[q], b_an[q][tot]])
        st[q] = -s
        tot -= cs[q] * s
    return st


def assign_states(t: Tables, z: np.ndarray, c: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, k) states in the batch's slot order for the given (electronegativity-balanced) rows;
    0 elsewhere."""
    n, k = z.shape
    out = np.zeros((n, k), np.int64)
    if len(rows) == 0 or k < 2:
        return out
    zr = z[rows].astype(np.int64)
    cr = np.where(zr > 0, c[rows], 0).astype(np.int64)
    order = np.argsort(t.eneg[zr], axis=1, kind="stable")
    zs, cs = np.take_along_axis(zr, order, 1), np.take_along_axis(cr, order, 1)
    # a meeting total is at most the smaller side's maximum; beyond _DENSE_MAX -> the dict program
    width = np.minimum((cs * t.max_pos[zs]).sum(1), (cs * t.max_neg[zs]).sum(1)) + 1
    st = np.zeros_like(zs)
    # passes over rows of one element count and width class (8, 16, ..., 128): the work scales
    # with the slots and totals present; trailing padding slots (sorted last) change nothing
    nel = (zs > 0).sum(1)
    group = nel * 8 + np.searchsorted([8, 16, 32, 64, _DENSE_MAX], width)
    dense = np.flatnonzero(width <= _DENSE_MAX)
    dense = dense[np.argsort(group[dense], kind="stable")]
    cuts = np.flatnonzero(np.diff(group[dense])) + 1
    slow = list(np.flatnonzero(width > _DENSE_MAX))
    for part in np.split(dense, cuts) if len(dense) else []:
        for a in range(0, len(part), _CHUNK):
            sel = part[a: a + _CHUNK]
            kk = max(int(nel[sel].max()), 2)
            got, found = _assign_dense(t, zs[sel, :kk], cs[sel, :kk], int(width[sel].max()))
            st[sel, :kk] = got
            slow.extend(sel[~found])
    for i in slow:
        keep = zs[i] > 0
        st[i, keep] = assign_one(t, zs[i, keep].tolist(), cs[i, keep].tolist())
    res = np.zeros_like(st)
    np.put_along_axis(res, order, st, 1)
    out[rows] = res
    return out
