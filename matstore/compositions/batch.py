"""CompositionBatch: compositions as padded arrays, the input of every featurizer and checker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .elements import SYMBOLS, Z_OF
from .keys import keys_from_arrays
from .parse import Composition, parse


@dataclass
class CompositionBatch:
    """Compositions as padded arrays, the input every featurizer and checker takes.

    z[n, k]: atomic numbers (0 = padding); counts[n, k]: reduced integer counts (0 = padding);
    composition_id[n]: keys. k is the largest element count in the batch.
    """

    composition_id: np.ndarray
    z: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.composition_id)

    @property
    def fractions(self) -> np.ndarray:
        c = self.counts.astype(np.float64)
        return c / c.sum(axis=1, keepdims=True)

    @classmethod
    def from_lists(cls, elements: list, counts: list, composition_id=None) -> "CompositionBatch":
        """From per-row element-symbol lists and count lists (e.g. the store's list columns)."""
        n = len(elements)
        k = max((len(e) for e in elements), default=1) or 1
        z = np.zeros((n, k), dtype=np.int16)
        c = np.zeros((n, k), dtype=np.int64)
        for i, (els, cs) in enumerate(zip(elements, counts)):
            z[i, : len(els)] = [Z_OF[s] for s in els]
            c[i, : len(cs)] = cs
        ids = keys_from_arrays(z, c) if composition_id is None else np.asarray(composition_id, np.int64)
        return cls(ids, z, c)

    @classmethod
    def from_compositions(cls, comps: list[Composition]) -> "CompositionBatch":
        return cls.from_lists([c.elements for c in comps], [c.counts for c in comps],
                              [c.composition_id for c in comps])

    @classmethod
    def from_formulas(cls, formulas: list[str]) -> "CompositionBatch":
        """Raises FormulaError on the first bad formula; filter with try_parse first if needed.
        Parsed a column at a time (column.parse_formulas), with parse()'s answers."""
        from .column import parse_formulas  # noqa: PLC0415  (polars: not for every importer)

        formulas = list(formulas)
        col = parse_formulas(formulas)
        if not col.ok.all():
            parse(formulas[int(np.argmin(col.ok))])   # raises parse()'s own error
        return cls(keys_from_arrays(col.z, col.counts), col.z.astype(np.int16), col.counts)

    def elements(self, i: int) -> list[str]:
        return [SYMBOLS[int(zz)] for zz in self.z[i] if zz > 0]

