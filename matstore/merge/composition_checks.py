"""validate.composition_problem over a whole table at once: which compositions rows are not what
matstore.compositions makes of their elements and counts, with array kernels (the element order
rank, keys_from_arrays, composition_rows' formulas) instead of a Python call per row. The verdict
of every row equals composition_problem's (tests/test_composition_checks.py); the row-wise function
stays the reference and words the first few bad rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import compositions as C
from ..compositions.kernels import composition_rows, element_rank
from .validate import MAX_ATOMS, MAX_COUNT, composition_problem

# rows are padded to their group's widest row: real rows have <= 8 elements, a forged wide row
# must not pad every other row to its width (memory); more than MAX_Z names one twice or an unknown
_WIDTHS = (8, 32, C.MAX_Z)


def problem_rows(table: pa.Table) -> np.ndarray:
    """Indices of the rows of a compositions table (composition_id, formula, elements, counts,
    n_elements, n_atoms) for which composition_problem is not None, in row order."""
    if table.num_rows == 0:
        return np.zeros(0, np.int64)
    els, cnts = _Lists(table["elements"]), _Lists(table["counts"])
    bad = ~els.valid | ~cnts.valid | (els.lens == 0) | (els.lens != cnts.lens) | (els.lens > _WIDTHS[-1])
    # per value: an unknown element (NULL included); a count NULL or outside 1..MAX_COUNT
    sym = els.values.dictionary_encode()
    z_of = np.array([C.Z_OF.get(s, 0) for s in sym.dictionary.to_pylist()] + [0], np.int64)
    flat_z = z_of[sym.indices.fill_null(len(z_of) - 1).to_numpy(zero_copy_only=False).astype(np.int64)]
    cv = cnts.values.cast(pa.int64())
    flat_c = cv.fill_null(0).to_numpy(zero_copy_only=False)
    bad |= els.any_value(flat_z == 0) | cnts.any_value((flat_c < 1) | (flat_c > MAX_COUNT))
    lo = 0
    for width in _WIDTHS:
        rows = np.flatnonzero(~bad & (els.lens > lo) & (els.lens <= width))
        lo = width
        if len(rows):
            bad[rows[_padded_problems(table, rows, els, cnts, flat_z, flat_c)]] = True
    return np.flatnonzero(bad)


def problems(table: pa.Table, limit: int = 3) -> list[tuple[int, dict, str]]:
    """The first `limit` bad rows as (index, row, composition_problem's words), in row order."""
    out = []
    for i in problem_rows(table)[:limit].tolist():
        row = table.slice(i, 1).to_pylist()[0]
        out.append((i, row, composition_problem(row) or "differs from its recomputed row"))
    return out


def _padded_problems(table, rows, els, cnts, flat_z, flat_c) -> np.ndarray:
    """Which of `rows` (well-formed pairs of known elements and counts in bounds) are wrong: an
    element twice or out of formula order, too many atoms, not reduced, or a formula, key,
    n_elements or n_atoms other than the array kernels' row of the same elements and counts."""
    lens = els.lens[rows]
    k = int(lens.max())
    r, p = _slots(lens)
    z = np.zeros((len(rows), k), np.int64)
    c = np.zeros((len(rows), k), np.int64)
    z[r, p] = flat_z[els.value_index(rows)]
    c[r, p] = flat_c[cnts.value_index(rows)]
    present = np.arange(k)[None, :] < lens[:, None]
    # strictly increasing rank over the present slots: formula order, and no element twice
    wrong = ((np.diff(element_rank(z), axis=1) <= 0) & present[:, 1:]).any(axis=1)
    atoms = c.sum(axis=1)
    if MAX_ATOMS is not None:
        wrong |= atoms > MAX_ATOMS
    wrong |= np.gcd.reduce(c, axis=1) != 1
    left = np.flatnonzero(~wrong)
    if len(left):
        ref = composition_rows(z[left], c[left])
        sub = table.take(pa.array(rows[left]))
        same = _equal(sub["formula"], ref["formula"])
        same &= _equal(sub["composition_id"], ref["composition_id"])
        same &= _equal(sub["n_elements"], pa.array(lens[left]))
        same &= _equal(sub["n_atoms"], pa.array(atoms[left]))
        wrong[left[~same]] = True
    return wrong


class _Lists:
    """A list column flattened: its values, each row's first value and length (0 for NULL)."""

    def __init__(self, col):
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        self.valid = arr.is_valid().to_numpy(zero_copy_only=False)
        self.lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        self.start = arr.offsets.to_numpy().astype(np.int64)[:-1]   # into arr.values (slices too)
        self.values = arr.values

    def value_index(self, rows: np.ndarray) -> np.ndarray:
        """Positions in values of every value of the given rows, row after row."""
        r, p = _slots(self.lens[rows])
        return self.start[rows][r] + p

    def any_value(self, flag: np.ndarray) -> np.ndarray:
        """Per row: is flag set for any of its values (values outside every row are ignored)."""
        hit = np.zeros(len(self.lens), bool)
        idx = self.value_index(np.arange(len(self.lens)))
        if len(idx):
            r, _ = _slots(self.lens)
            hit[r[flag[idx]]] = True
        return hit


def _slots(lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, position) of every slot of rows with these lengths."""
    rows = np.repeat(np.arange(len(lens)), lens)
    pos = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
    return rows, pos


def _equal(a, b) -> np.ndarray:
    """Element-wise a == b, NULL counting as different."""
    return pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False).astype(bool)
