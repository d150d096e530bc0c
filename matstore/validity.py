"""Chemical plausibility: SMACT's charge-neutrality and Pauling electronegativity rules at array speed.

`smact.screening.smact_validity(formula)` (defaults) enumerates every oxidation-state combination
in Python: fast for binaries, ~190/s for generated 5-8 element formulas. It decides:

1. one element, or every element in smact's ``metals`` list (``include_alloys``) -> valid;
2. any element without ICSD24 oxidation states (consensus >= 3, zero excluded) -> invalid;
3. valid iff some assignment of one state per element gives sum(count * state) == 0 (counts are
   the reduced integer counts) and passes ``eneg_states_test``: every cation's Pauling
   electronegativity < every anion's, and any element without a Pauling value fails.

The same question without enumeration: (3) means "sort the elements by electronegativity, cut
the list once (never between equal values); the left part takes positive states, the right part
negative ones, and the two sides' charge totals meet". Each side's reachable totals are a bitset
(a uint64 per row, bit v = total v reachable) built with one vectorized shift-or per element and
state, so a batch costs ~100 numpy operations whatever its size. A total above 63 can never meet
a side whose maximum is at most 63, so 64 bits are exact whenever one side's maximum is <= 63;
the few rows where both exceed it go to the same algorithm on Python integers (unbounded bitsets).

Verdicts are for the reduced integer composition (the store's key). smact truncates fractional
amounts with int(), so ``smact_validity("Li0.5CoO2")`` is not the verdict for LiCo2O4; on integer
formulas the two agree (tests/test_validity.py compares on >= 20,000 real and generated ones).
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from .compositions import MAX_ATOMS, MAX_COUNT, MAX_Z, SYMBOLS, CompositionBatch

KERNEL_VERSION = "001"
_WORD = 64


def _smact_version() -> str:
    try:
        from importlib.metadata import version

        return version("smact")
    except Exception:  # noqa: BLE001 - version is informative only
        return "unknown"


CHECKER_VERSION = f"{KERNEL_VERSION}-smact{_smact_version()}-icsd24c3"


class _Tables:
    """Per-element data indexed by atomic number (row 0 = padding)."""

    def __init__(self) -> None:
        from smact import Element, metals
        from smact.utils.oxidation import ICSD24OxStatesFilter

        # smact_validity's default: ICSD24FilterConfig() = consensus 3, no zero, commonality low
        df = ICSD24OxStatesFilter().filter(consensus=3, include_zero=False, commonality="low")
        ox = {str(r["element"]): [int(x) for x in str(r["oxidation_state"]).split()]
              for _, r in df.iterrows()}
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
            self.states[z] = tuple(sorted(ox.get(sym, ())))
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
        for z in range(n):
            s = self.states[z]
            if s:
                self.min_state[z] = s[0]
                self.shifted[z, : len(s)] = np.array(s) - s[0]
                self.n_all[z] = len(s)
            self.pos[z, : len(pos[z])] = pos[z]
            self.n_pos[z] = len(pos[z])
            self.max_pos[z] = max(pos[z], default=0)
            self.neg[z, : len(neg[z])] = neg[z]
            self.n_neg[z] = len(neg[z])
            self.max_neg[z] = max(neg[z], default=0)
        self.n_all[0] = 1  # padding: one state, shift 0 (identity)
        self.n_neg[0] = 1  # padding: identity in the anion (suffix) pass


@lru_cache(maxsize=1)
def tables() -> _Tables:
    return _Tables()


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
def _exact_one(zs: tuple[int, ...], cs: tuple[int, ...]) -> tuple[bool, bool]:
    """(charge_neutral, electronegativity_balanced) with unbounded Python-int bitsets."""
    t = tables()
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


def _check_unique(z: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    t = tables()
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
    absurd = (c > MAX_COUNT).any(1) | (c.sum(1) > MAX_ATOMS) | (c < 0).any(1)
    need_exact &= ~absurd
    neutral &= ~absurd
    balanced &= ~absurd
    supported &= ~absurd
    for i in np.flatnonzero(need_exact):
        keep = present[i]
        cn, en = _exact_one(tuple(int(v) for v in z[i, keep]), tuple(int(v) for v in c[i, keep]))
        neutral[i], balanced[i] = cn, en
    balanced &= neutral  # a balanced assignment is charge-neutral by construction
    return dict(charge_neutral=neutral, electronegativity_balanced=balanced,
                smact_valid=fast | balanced, supported=supported)


def check(batch: CompositionBatch) -> dict[str, np.ndarray]:
    """Validity flags for a batch: bool arrays charge_neutral, electronegativity_balanced,
    smact_valid (= smact_validity with default arguments) and supported (False where smact
    itself would raise: an element beyond its data, Z > 103, outside the fast paths; the
    other flags are False there). Repeated compositions in the batch are computed once."""
    if len(batch) == 0:
        e = np.zeros(0, bool)
        return dict(charge_neutral=e, electronegativity_balanced=e, smact_valid=e, supported=e)
    _, first, inverse = np.unique(batch.composition_id, return_index=True, return_inverse=True)
    out = _check_unique(np.asarray(batch.z)[first], np.asarray(batch.counts)[first])
    out["smact_valid"] = out["smact_valid"] & out["supported"]
    return {name: v[inverse.reshape(-1)] for name, v in out.items()}
