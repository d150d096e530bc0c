"""The common face of every featurizer (like matminer's BaseFeaturizer, but batch-first).

A featurizer turns a CompositionBatch into an array of shape (n, *shape) with array operations.
Rows it cannot encode (an element outside its table, a count beyond its range) are NaN in
float outputs (all-zero for the one-hot map) and False in `encodable(batch)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..compositions import CompositionBatch


class Featurizer(ABC):
    name: str
    version: str
    labels: list[str]
    shape: tuple[int, ...]

    @abstractmethod
    def transform(self, batch: CompositionBatch) -> np.ndarray:
        """(n, *shape) values; rows that cannot be encoded are signalled (see encodable)."""

    def encodable(self, batch: CompositionBatch) -> np.ndarray:
        """bool (n,): True where transform gives a real encoding. Default: every row."""
        return np.ones(len(batch), bool)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"<featurizer {self.name} v{self.version} shape={self.shape}>"
