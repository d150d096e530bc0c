"""Oxidation-state sets: which states each element takes under each of smact's sets, the
per-element tables the kernel reads (indexed by atomic number), and the checker version the store
records for a set."""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MatstoreError
from ..plugins import Registry

KERNEL_VERSION = "002"  # 002: sets selectable, oxidation-state assignment stored


class OxidationSetError(MatstoreError, ValueError):
    """An oxidation-state set name matstore does not know."""


# name -> (smact Element attribute holding the set or None for smact_validity's default, meaning)
OXIDATION_SETS: Registry[tuple[str | None, str]] = Registry("oxidation-state set", {
    "icsd24": ("oxidation_states_icsd24", "ICSD 2024, states with > 5 reports (smact 'icsd24')"),
    "icsd16": ("oxidation_states_icsd16", "ICSD 2016 states (smact 'icsd16')"),
    "smact14": ("oxidation_states_smact14", "SMACT 2014's list, the most permissive (smact 'smact14')"),
    "pymatgen_sp": ("oxidation_states_sp", "states of pymatgen's structure-predictor table (smact 'pymatgen_sp')"),
    "icsd24c3": (None, "smact_validity's default when no set is named: ICSD 2024 with >= 3 reports "
                       "(matstore's checker before sets were selectable)"),
}.items(), error=OxidationSetError, unknown="oxidation-state set {name!r} is not one of: {choices}")
DEFAULT_SET = "icsd24"      # what the store's views call valid
SMACT_DEFAULT_SET = "icsd24c3"  # smact_validity() with no oxidation_states_set


def known_set(name: str) -> str:
    OXIDATION_SETS.lookup(name)
    return name


@lru_cache(maxsize=1)   # a metadata read costs ~4 ms: once per process, not per batch
def _smact_version() -> str:
    try:
        from importlib.metadata import version

        return version("smact")
    except Exception:  # noqa: BLE001 - version is informative only
        return "unknown"


def checker_version(oxidation_set: str = DEFAULT_SET) -> str:
    """The validity.checker_version written for a set: kernel, smact version, set."""
    return f"{KERNEL_VERSION}-smact{_smact_version()}-{known_set(oxidation_set)}"


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

    from ..compositions import SYMBOLS

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


@lru_cache(maxsize=1)
def icsd24_report_counts() -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    """SMACT's ICSD 2024 report counts: (symbol, non-zero state) -> reports, and per element the
    reports of all its non-zero states (the denominator of every share)."""
    from smact import data_directory

    rows = json.loads((Path(data_directory) / "oxidation_states_icsd24_counts.json").read_text())
    counts = {(r["element"], int(r["oxidation_state"])): int(r["results_count"])
              for r in rows if int(r["oxidation_state"]) != 0}
    total: dict[str, int] = {}
    for (element, _), n in counts.items():
        total[element] = total.get(element, 0) + n
    return counts, total


def _icsd24_log_share() -> dict[tuple[str, int], float]:
    """(symbol, state) -> log((reports + 1) / (element's non-zero reports + 1)), ICSD 2024."""
    counts, total = icsd24_report_counts()
    return {k: float(np.log((n + 1) / (total[k[0]] + 1))) for k, n in counts.items()}


class Tables:
    """Per-element data of one oxidation-state set, indexed by atomic number (row 0 = padding)."""

    def __init__(self, oxidation_set: str) -> None:
        from smact import Element, metals

        from ..compositions import MAX_Z, SYMBOLS

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
def _tables(oxidation_set: str) -> Tables:
    return Tables(oxidation_set)


def tables(oxidation_set: str = SMACT_DEFAULT_SET) -> Tables:
    return _tables(known_set(oxidation_set))
