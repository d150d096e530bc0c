"""Chemical systems as arrays: element ranks in pymatgen's coordinate order, composition rows as
sorted padded ranks with atom fractions, and element sets packed into one int64 key (<= 9
elements) so systems and their subsets are looked up with searchsorted, without a Python loop."""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from .. import compositions

NUMERICAL_TOL = 1e-8          # pymatgen PhaseDiagram.numerical_tol: smaller amounts are dropped
IN_SIMPLEX_TOL = NUMERICAL_TOL / 10
FORMATION_TOL = 1e-11         # pymatgen PhaseDiagram.formation_energy_tol
PAD = 1 << 30                # rank of an empty slot: sorts after every element
BLOCK = 1 << 22              # candidates x facets x k values per einsum block

# element rank in pymatgen's Element order (electronegativity, then symbol): the coordinate order
ORDER = sorted((s for s in compositions.SYMBOLS if s),
                key=lambda s: (compositions.SORT_X[compositions.Z_OF[s]], s))
RANK = np.full(compositions.MAX_Z + 1, PAD, np.int64)
RANK[[compositions.Z_OF[s] for s in ORDER]] = np.arange(len(ORDER))
Z_OF_RANK = np.array([compositions.Z_OF[s] for s in ORDER], np.int64)
N_EL = len(ORDER)

PACK_MAX = 9                 # elements a packed system key holds (7 bits per element rank)


def pack(ranks: np.ndarray, nel: np.ndarray) -> np.ndarray:
    """One int64 per row of sorted padded ranks with <= 9 elements (else -1): sum (r+1) << 7i."""
    r = ranks[:, :PACK_MAX]
    v = np.where(r < PAD, r + 1, 0).astype(np.int64)
    key = (v << (7 * np.arange(r.shape[1], dtype=np.int64))).sum(axis=1)
    return np.where(nel <= PACK_MAX, key, -1)


def pack_cols(ranks: np.ndarray, cols: tuple) -> np.ndarray:
    return sum((ranks[:, c].astype(np.int64) + 1) << (7 * i) for i, c in enumerate(cols))


@lru_cache(maxsize=None)
def subsets(k: int) -> tuple:
    """Column index tuples of every subset of 2..k of k columns (ascending, so keys stay sorted)."""
    return tuple(c for n in range(2, k + 1) for c in itertools.combinations(range(k), n))


def ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenated aranges starts[i] .. starts[i] + lens[i] (no Python loop)."""
    lens = np.asarray(lens, np.int64)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    return np.repeat(np.asarray(starts, np.int64) - (np.cumsum(lens) - lens), lens) + np.arange(total)


def padded_ranks(z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ranks sorted ascending with PAD for empty slots, atom fractions in that order)."""
    z = np.asarray(z, np.int64)
    c = np.asarray(counts, np.float64)
    present = (z > 0) & (c > 0)
    r = np.where(present, RANK[np.where(present, z, 0)], PAD)
    order = np.argsort(r, axis=1, kind="stable")
    r = np.take_along_axis(r, order, 1)
    c = np.take_along_axis(np.where(present, c, 0.0), order, 1)
    tot = c.sum(axis=1, keepdims=True)
    return r, c / np.where(tot > 0, tot, 1.0)
