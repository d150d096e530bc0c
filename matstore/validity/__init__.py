"""Chemical plausibility: SMACT's charge-neutrality and Pauling electronegativity rules at array speed,
for any of smact's oxidation-state sets, and one charge-neutral oxidation-state assignment per
valid composition (most common states first).

`smact.screening.smact_validity(formula, oxidation_states_set=SET)` enumerates every
oxidation-state combination in Python: fast for binaries, ~190/s for generated 5-8 element
formulas. It decides:

1. one element, or every element in smact's ``metals`` list (``include_alloys``) -> valid;
2. any element without states in the set -> invalid;
3. valid iff some assignment of one state per element gives sum(count * state) == 0 (counts are
   the reduced integer counts) and passes ``eneg_states_test``: every cation's Pauling
   electronegativity < every anion's, and any element without a Pauling value fails.

Sets (OXIDATION_SETS): smact's named sets ``icsd24`` (ICSD 2024, > 5 reports; the store's
DEFAULT_SET), ``icsd16``, ``smact14``, ``pymatgen_sp``, and ``icsd24c3``: what smact_validity
uses when no set is named (ICSD 2024 filtered at >= 3 reports), which was matstore's only checker
before sets were selectable. ``check(batch)`` with no set equals ``smact_validity(formula)`` with
no arguments, i.e. ``icsd24c3``; the store (validate, generate --validate, the views) uses
DEFAULT_SET. No set contains the state 0 (checked at load: the kernel relies on it).

The same question without enumeration: (3) means "sort the elements by electronegativity, cut
the list once (never between equal values); the left part takes positive states, the right part
negative ones, and the two sides' charge totals meet". Each side's reachable totals are a bitset
(a uint64 per row, bit v = total v reachable) built with one vectorized shift-or per element and
state, so a batch costs ~100 numpy operations whatever its size. A total above 63 can never meet
a side whose maximum is at most 63, so 64 bits are exact whenever one side's maximum is <= 63;
the few rows where both exceed it go to the same algorithm on Python integers (unbounded bitsets).

The assignment ("Mg2+ Zr4+ S2-") of an electronegativity-balanced composition is the one with
the highest sum over atoms of log p(element, state), p = the state's share of the element's
ICSD 2024 reports (smact's oxidation_states_icsd24_counts.json, zero excluded, add-one so a state
the ICSD never reports ranks last): the most probable assignment if each atom's state were drawn
from its ICSD frequencies. It is the same cut search with, instead of a bitset, the best score per
total (a max-plus dynamic program over totals, one (rows, width) array per side); ties go to the
state listed first (more reports), then to the lower total, then to more cations. Rows whose
totals exceed 127 on both sides take the same program on Python dicts.

Verdicts are for the reduced integer composition (the store's key). smact truncates fractional
amounts with int(), so ``smact_validity("Li0.5CoO2")`` is not the verdict for LiCo2O4; on integer
formulas the two agree (tests/test_validity.py and tests/test_validity_sets.py compare on >= 20,000
real and generated ones per set).
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from .errors import MatstoreError

if TYPE_CHECKING:
    from .compositions import CompositionBatch


def __getattr__(name: str):
    # compositions (pymatgen) loads on first use, so the CLI can read OXIDATION_SETS cheaply
    if name in ("SYMBOLS", "MAX_Z"):
        from . import compositions

        return getattr(compositions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


KERNEL_VERSION = "002"  # 002: sets selectable, oxidation-state assignment stored
_WORD = 64

# name -> (smact Element attribute holding the set or None for smact_validity's default, meaning)
OXIDATION_SETS: dict[str, tuple[str | None, str]] = {
    "icsd24": ("oxidation_states_icsd24", "ICSD 2024, states with > 5 reports (smact 'icsd24')"),
    "icsd16": ("oxidation_states_icsd16", "ICSD 2016 states (smact 'icsd16')"),
    "smact14": ("oxidation_states_smact14", "SMACT 2014's list, the most permissive (smact 'smact14')"),
    "pymatgen_sp": ("oxidation_states_sp", "states of pymatgen's structure-predictor table (smact 'pymatgen_sp')"),
    "icsd24c3": (None, "smact_validity's default when no set is named: ICSD 2024 with >= 3 reports "
                       "(matstore's checker before sets were selectable)"),
}
DEFAULT_SET = "icsd24"      # what the store's views call valid
SMACT_DEFAULT_SET = "icsd24c3"  # smact_validity() with no oxidation_states_set


class OxidationSetError(MatstoreError, ValueError):
    """An oxidation-state set name matstore does not know."""


def _known_set(name: str) -> str:
    if name not in OXIDATION_SETS:
        raise OxidationSetError(f"oxidation-state set {name!r} is not one of: {', '.join(OXIDATION_SETS)}")
    return name


def _smact_version() -> str:
    try:
        from importlib.metadata import version

        return version("smact")
    except Exception:  # noqa: BLE001 - version is informative only
        return "unknown"


def checker_version(oxidation_set: str = DEFAULT_SET) -> str:
    """The validity.checker_version written for a set: kernel, smact version, set."""
    return f"{KERNEL_VERSION}-smact{_smact_version()}-{_known_set(oxidation_set)}"


CHECKER_VERSION = checker_version(DEFAULT_SET)


def _set_states(oxidation_set: str) -> dict[str, list[int]]:
    """symbol -> the set's states, loaded the way smact_validity loads them."""
    attr = OXIDATION_SETS[oxidation_set][0]
    if attr is None:
        from smact.utils.oxidation import ICSD24OxStatesFilter

        # smact_validity's default: ICSD24FilterConfig() = consensus 3, no zero, commonality low
        df = ICSD24OxStatesFilter().filter(consensus=3, include_zero=False, commonality="low")
        return {str(r["element"]): [int(x) for x in str(r["oxidation_state"]).split()]
                for _, r in df.iterrows()}
    from smact import Element

    from .compositions import SYMBOLS

    out = {}
    for sym in SYMBOLS[1:]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                states = getattr(Element(sym), attr)
        except (KeyError, NameError):
            continue
        if states:
            out[sym] = [int(x) for x in states]
    return out


def _icsd24_log_share() -> dict[tuple[str, int], float]:
    """(symbol, state) -> log((reports + 1) / (element's non-zero reports + 1)), ICSD 2024."""
    from smact import data_directory

    rows = json.loads((Path(data_directory) / "oxidation_states_icsd24_counts.json").read_text())
    total: dict[str, int] = {}
    for r in rows:
        if int(r["oxidation_state"]) != 0:
            total[r["element"]] = total.get(r["element"], 0) + int(r["results_count"])
    return {(r["element"], int(r["oxidation_state"])):
            float(np.log((int(r["results_count"]) + 1) / (total[r["element"]] + 1)))
            for r in rows if int(r["oxidation_state"]) != 0}


class _Tables:
    """Per-element data of one oxidation-state set, indexed by atomic number (row 0 = padding)."""

    def __init__(self, oxidation_set: str) -> None:
        from smact import Element, metals

        from .compositions import MAX_Z, SYMBOLS

        self.oxidation_set = oxidation_set
        ox = _set_states(oxidation_set)
        if any(0 in s for s in ox.values()):
            raise OxidationSetError(f"oxidation-state set {oxidation_set!r} lists the state 0; "
                                    "the validity kernel assumes it never does")
        share = _icsd24_log_share()
        n = MAX_Z + 1
        self.states: list[tuple[int, ...]] = [()] * n
        self.known = np.zeros(n, bool)      # smact has elemental data (else smact raises)
        self.metal = np.zeros(n, bool)
        self.eneg = np.full(n, np.nan)      # NaN: no Pauling value (fails eneg_states_test)
        metal_set = set(metals)
        for z in range(1, n):
            sym = SYMBOLS[z]
            self.metal[z] = sym in metal_set
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    e = Element(sym)
            except (KeyError, NameError):
                continue
            self.known[z] = True
            if e.pauling_eneg is not None:
                self.eneg[z] = float(e.pauling_eneg)
            self.states[z] = tuple(sorted(set(ox.get(sym, ()))))
        self.has_states = np.array([len(s) > 0 for s in self.states])
        self.known[0] = self.metal[0] = self.has_states[0] = True  # padding never vetoes
        self.eneg[0] = np.inf                                        # padding sorts last
        m_all = max(len(s) for s in self.states)
        pos = [[x for x in s if x > 0] for s in self.states]
        neg = [[-x for x in s if x < 0] for s in self.states]
        m_pos, m_neg = max(map(len, pos)), max(map(len, neg))
        # Signed states shifted by the element's minimum (non-negative shifts); padding: [0].
        self.shifted = np.zeros((n, m_all), np.int64)
        self.n_all = np.zeros(n, np.int64)
        self.min_state = np.zeros(n, np.int64)
        self.pos = np.zeros((n, m_pos), np.int64)
        self.n_pos = np.zeros(n, np.int64)
        self.max_pos = np.zeros(n, np.int64)
        self.neg = np.zeros((n, m_neg), np.int64)
        self.n_neg = np.zeros(n, np.int64)
        self.max_neg = np.zeros(n, np.int64)
        # the assignment's per-side states (magnitudes), most reported first, and their log shares
        self.pos_w = np.zeros((n, m_pos))
        self.neg_w = np.zeros((n, m_neg))
        for z in range(n):
            s = self.states[z]
            if s:
                self.min_state[z] = s[0]
                self.shifted[z, : len(s)] = np.array(s) - s[0]
                self.n_all[z] = len(s)
            for side, sign, vals, w in ((pos, 1, self.pos, self.pos_w), (neg, -1, self.neg, self.neg_w)):
                ranked = sorted(side[z], key=lambda m: (-share.get((SYMBOLS[z], sign * m), 0.0), m))
                vals[z, : len(ranked)] = ranked
                w[z, : len(ranked)] = [share.get((SYMBOLS[z], sign * m), 0.0) for m in ranked]
            self.n_pos[z] = len(pos[z])
            self.max_pos[z] = max(pos[z], default=0)
            self.n_neg[z] = len(neg[z])
            self.max_neg[z] = max(neg[z], default=0)
        self.n_all[0] = 1  # padding: one state, shift 0 (identity)
        self.n_neg[0] = 1  # padding: identity in the anion (suffix) pass


@lru_cache(maxsize=None)
def _tables(oxidation_set: str) -> _Tables:
    return _Tables(oxidation_set)


def tables(oxidation_set: str = SMACT_DEFAULT_SET) -> _Tables:
    return _tables(_known_set(oxidation_set))


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
def _exact_one(zs: tuple[int, ...], cs: tuple[int, ...], oxidation_set: str) -> tuple[bool, bool]:
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


def _check_unique(z: np.ndarray, c: np.ndarray, t: _Tables) -> dict[str, np.ndarray]:
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
    from .compositions import MAX_ATOMS, MAX_COUNT

    absurd = (c > MAX_COUNT).any(1) | (c.sum(1) > MAX_ATOMS) | (c < 0).any(1)
    need_exact &= ~absurd
    neutral &= ~absurd
    balanced &= ~absurd
    supported &= ~absurd
    for i in np.flatnonzero(need_exact):
        keep = present[i]
        cn, en = _exact_one(tuple(int(v) for v in z[i, keep]), tuple(int(v) for v in c[i, keep]),
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


def _assign_dense(t: _Tables, zs: np.ndarray, cs: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
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


def _assign_one(t: _Tables, zs: list[int], cs: list[int]) -> list[int]:
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


def _assign(t: _Tables, z: np.ndarray, c: np.ndarray, rows: np.ndarray) -> np.ndarray:
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
        st[i, keep] = _assign_one(t, zs[i, keep].tolist(), cs[i, keep].tolist())
    res = np.zeros_like(st)
    np.put_along_axis(res, order, st, 1)
    out[rows] = res
    return out


def check(batch: CompositionBatch, oxidation_set: str = SMACT_DEFAULT_SET,
          assign: bool = False) -> dict[str, np.ndarray]:
    """Validity flags for a batch under one oxidation-state set: bool arrays charge_neutral,
    electronegativity_balanced, smact_valid (= smact_validity(formula, oxidation_states_set=set);
    the default set is smact_validity's own default) and supported (False where smact itself
    would raise: an element beyond its data, Z > 103, outside the fast paths; the other flags are
    False there). assign=True adds oxidation_states: (n, k) ints, one state per batch slot, the
    most probable charge-neutral, Pauling-passing assignment where electronegativity_balanced,
    else zeros. Repeated compositions in the batch are computed once."""
    t = tables(oxidation_set)
    if len(batch) == 0:
        e = np.zeros(0, bool)
        out = dict(charge_neutral=e, electronegativity_balanced=e, smact_valid=e, supported=e)
        if assign:
            out["oxidation_states"] = np.zeros(np.asarray(batch.z).shape, np.int64)
        return out
    _, first, inverse = np.unique(batch.composition_id, return_index=True, return_inverse=True)
    z, c = np.asarray(batch.z)[first], np.asarray(batch.counts)[first]
    out = _check_unique(z, c, t)
    out["smact_valid"] = out["smact_valid"] & out["supported"]
    if assign:
        out["oxidation_states"] = _assign(t, z, c, np.flatnonzero(out["electronegativity_balanced"]))
    return {name: v[inverse.reshape(-1)] for name, v in out.items()}


def ions(elements: list[str], states: list[int]) -> str:
    """'Mg2+ Zr4+ S2-' (pymatgen's species notation, magnitude 1 omitted); '' without states."""
    if not any(states):
        return ""
    return " ".join(f"{e}{'' if abs(s) == 1 else abs(s)}{'+' if s > 0 else '-'}"
                    for e, s in zip(elements, states))
