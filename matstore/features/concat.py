"""Several featurizers side by side: ``get("fractions+magpie")`` is one flat vector holding the
element fractions, then the Magpie statistics (218 values). A row is encodable where every part
is; the version names each part's version, so a part's change makes stored vectors stale.
"""

from __future__ import annotations

import numpy as np

from ..compositions import CompositionBatch
from .base import Featurizer


class Concat(Featurizer, register=False):
    def __init__(self, parts: list[Featurizer]):
        self.parts = parts
        self.name = "+".join(p.name for p in parts)
        self.version = "+".join(p.version for p in parts)
        self.shape = (sum(p.size for p in parts),)
        self.labels = [label for p in parts for label in p.labels]

    def encodable(self, batch: CompositionBatch) -> np.ndarray:
        ok = np.ones(len(batch), bool)
        for p in self.parts:
            ok &= p.encodable(batch)
        return ok

    def transform(self, batch: CompositionBatch) -> np.ndarray:
        out = np.concatenate([np.asarray(p.transform(batch), np.float64).reshape(len(batch), -1)
                              for p in self.parts], axis=1)
        out[~self.encodable(batch)] = np.nan
        return out

    def citations(self) -> list[str]:
        return list(dict.fromkeys(c for p in self.parts for c in p.citations()))

    def implementors(self) -> list[str]:
        return list(dict.fromkeys(i for p in self.parts for i in p.implementors()))
