"""Reference coverage: which element sub-systems of a composition hold at least one reference phase.

A hull built from a reference that knows nothing of a composition's binaries (Ce-N, Dy-N for
Ce3Dy2S4N3) is the elements' tie plane there, so a predicted energy falls far below it for no
physical reason. Coverage says how much of the hull under a composition is real: a proper
sub-system (2 or 3 of its elements, fewer than all of them) is covered when the reference has a
phase (any ground state with a finite energy) whose element set is exactly that sub-system.
`coverage` is the share of covered binary sub-systems (1.0 for unaries and binaries: their own
system being new is what a discovery is, the hull there is rightly the elements),
`ternary_coverage` the share of covered ternary sub-systems (NULL under 4 elements),
`missing_systems` the uncovered ones, binaries first ('Ce-N', 'Dy-N', 'Ce-Dy-N').
Element symbols in a sub-system follow pymatgen's Element order (electronegativity, then symbol).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .systems import ORDER, PAD, pack, pack_cols, padded_ranks

MAX_SUBSYSTEM = 3        # binaries, then ternaries
_SYMBOLS = np.array(ORDER, dtype=object)


@dataclass
class Coverage:
    coverage: np.ndarray          # share of binary sub-systems with a reference phase (NaN: none)
    ternary_coverage: np.ndarray  # share of ternary sub-systems with one (NaN: fewer than 3 elements)
    missing: pa.ListArray         # list<string> of uncovered sub-systems, binaries first


def system_keys(phase_ranks: np.ndarray) -> np.ndarray:
    """Sorted unique packed element-set keys of phases with 2 or 3 elements."""
    nel = (phase_ranks < PAD).sum(axis=1)
    sel = (nel >= 2) & (nel <= MAX_SUBSYSTEM)
    return np.unique(pack(phase_ranks[sel], nel[sel]))


def evaluate(keys: np.ndarray, z, counts) -> Coverage:
    """Coverage of compositions (padded z/counts rows) by the reference element-set keys."""
    ranks, _ = padded_ranks(z, counts)
    m = len(ranks)
    nel = (ranks < PAD).sum(axis=1)
    cov = np.ones(m)
    tern = np.full(m, np.nan)
    rows, order, names = [], [], []
    for k in np.unique(nel):
        if k < 2:
            continue
        sel = np.flatnonzero(nel == k)
        r = ranks[sel]
        for size in (2, 3):
            if k <= size:
                continue
            combos = list(itertools.combinations(range(int(k)), size))
            hit = np.zeros(len(sel))
            for j, cols in enumerate(combos):
                have = np.isin(pack_cols(r, cols), keys)
                hit += have
                miss = np.flatnonzero(~have)
                if len(miss):
                    name = _SYMBOLS[r[miss, cols[0]]]
                    for c in cols[1:]:
                        name = name + "-" + _SYMBOLS[r[miss, c]]
                    rows.append(sel[miss])
                    order.append(np.full(len(miss), size * 10_000 + j))
                    names.append(name)
            share = hit / len(combos)
            if size == 2:
                cov[sel] = share
            else:
                tern[sel] = share
    offsets = np.zeros(m + 1, np.int32)
    if rows:
        row = np.concatenate(rows)
        srt = np.lexsort((np.concatenate(order), row))
        flat = np.concatenate(names)[srt]
        np.cumsum(np.bincount(row, minlength=m), out=offsets[1:])
    else:
        flat = np.zeros(0, object)
    missing = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.tolist(), pa.string()))
    return Coverage(cov, tern, missing)
