"""Array kernels over decoded (z, counts) rows, equal to the scalar path (parse.from_arrays,
pymatgen's reduced_formula; tests/test_runner_kernels.py proves it): canonical rows and whole
compositions-table rows for a generate batch, without a Python loop per row."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from .elements import MAX_Z, PAULING_X, SPECIAL_FORMULAS, SYMBOLS, Z_OF, sort_order
from .keys import keys_from_arrays
from .parse import from_arrays

_MAXC = 64                                  # counts above this take the Python path
_RANK = np.full(MAX_Z + 2, np.iinfo(np.int32).max, np.int64)
_order = sort_order(s for s in SYMBOLS if s)
_RANK[[Z_OF[s] for s in _order]] = np.arange(len(_order))
_BASE = [""] + [s + ("" if c == 1 else str(c)) for s in SYMBOLS[1:]
                 for c in range(1, _MAXC + 1)]
_OPEN = len(_BASE)                         # "(" + token: the first element of a polyanion
_TOKENS = pa.array(_BASE + ["(" + t for t in _BASE], pa.string())
_SUFFIX = pa.array([""] + [f"){p}" for p in range(1, _MAXC + 1)], pa.string())
_SYMBOLS = pa.array(SYMBOLS, pa.string())
del _order


def element_rank(z: np.ndarray) -> np.ndarray:
    """Each atomic number's place in formula order (elements.sort_order); padding ranks last."""
    return _RANK[np.asarray(z, np.int64)]


def canonical(z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decoded rows -> (z, reduced counts, n_elements) in the store's element order (padding last):
    the rows batch_from_arrow rebuilds from the stored compositions."""
    z = np.asarray(z, np.int64)
    c = np.asarray(counts, np.int64)
    present = (z > 0) & (c > 0)
    g = np.gcd.reduce(np.where(present, c, 0), axis=1)
    g[g == 0] = 1
    c = np.where(present, c // g[:, None], 0)
    order = np.argsort(np.where(present, _RANK[z], np.iinfo(np.int64).max), axis=1, kind="stable")
    z = np.take_along_axis(np.where(present, z, 0), order, 1)
    c = np.take_along_axis(c, order, 1)
    return z, c, (c > 0).sum(axis=1)


def composition_rows(z: np.ndarray, counts: np.ndarray) -> pa.Table:
    """compositions-table rows for decoded (z, counts) rows, vectorized; equal to from_arrays."""
    z, c, n_el = canonical(z, counts)
    m, k = z.shape
    rows = np.arange(m)
    # pymatgen's polyanion grouping: >= 3 elements, the last two close in electronegativity
    # and sharing a factor p -> "...(AxBy)p" with the last two counts divided by p.
    i_last, i_second = np.maximum(n_el - 1, 0), np.maximum(n_el - 2, 0)
    last, second = z[rows, i_last], z[rows, i_second]
    pf = np.gcd(c[rows, i_last], c[rows, i_second])
    with np.errstate(invalid="ignore"):
        close = PAULING_X[last] - PAULING_X[second] < 1.65
    poly = (n_el >= 3) & close & (pf != 1)
    slow = (c > _MAXC).any(axis=1)          # beyond the token table: the scalar path
    cd = c.copy()
    pr = np.flatnonzero(poly)
    cd[pr, i_last[pr]] //= pf[pr]
    cd[pr, i_second[pr]] //= pf[pr]
    tok = np.where(c > 0, (z - 1) * _MAXC + np.minimum(cd, _MAXC), 0).astype(np.int32)
    tok[pr, i_second[pr]] += _OPEN
    cols = [pa.DictionaryArray.from_arrays(pa.array(tok[:, j]), _TOKENS).dictionary_decode()
            for j in range(k)]
    cols.append(pa.DictionaryArray.from_arrays(
        pa.array(np.where(poly, np.minimum(pf, _MAXC), 0).astype(np.int32)), _SUFFIX).dictionary_decode())
    formula = pl.DataFrame({f"t{j}": col for j, col in enumerate(cols)}).select(
        pl.concat_str([pl.col(f"t{j}") for j in range(len(cols))]).alias("f"))["f"]
    formula = formula.replace(SPECIAL_FORMULAS)
    if slow.any():
        fixed = formula.to_list()
        for i in np.flatnonzero(slow):
            fixed[i] = from_arrays(z[i], c[i]).formula
        formula = pl.Series("f", fixed, pl.Utf8)
    mask = c > 0
    offsets = pa.array(np.concatenate([[0], np.cumsum(n_el)]).astype(np.int32))
    elements = pa.ListArray.from_arrays(offsets, _SYMBOLS.take(pa.array(z[mask])))
    cnts = pa.ListArray.from_arrays(offsets, pa.array(c[mask].astype(np.int32)))
    return pa.table({"composition_id": pa.array(keys_from_arrays(z, c)),
                     "formula": formula.to_arrow(),
                     "elements": elements, "counts": cnts,
                     "n_elements": pa.array(n_el.astype(np.int32)),
                     "n_atoms": pa.array(c.sum(axis=1))})

