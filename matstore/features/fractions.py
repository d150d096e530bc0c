"""Element fractions: the ElemNet input vector.

ElemNet (Jha et al. 2018) uses 86 elements: H..Pu in atomic-number order without He, Ne, Ar,
Po, At, Rn, Fr, Ra. That is the MatGAN 85 plus Kr. A composition with any other element is
not encodable (NaN row).
"""

from __future__ import annotations

import numpy as np

from ..compositions import Z_OF, CompositionBatch
from ..elements85 import ELEMENTS_85
from .base import Featurizer

ELEMENTS_86: tuple[str, ...] = tuple(sorted(ELEMENTS_85 + ("Kr",), key=Z_OF.__getitem__))
_COL_OF_Z = np.full(119, -1, dtype=np.int64)
_COL_OF_Z[[Z_OF[s] for s in ELEMENTS_86]] = np.arange(len(ELEMENTS_86))


CITATION = """@article{jha2018elemnet,
  author = {Jha, Dipendra and Ward, Logan and Paul, Arindam and Liao, Wei-keng and
            Choudhary, Alok and Wolverton, Christopher and Agrawal, Ankit},
  title = {{ElemNet}: Deep Learning the Chemistry of Materials From Only Elemental Composition},
  journal = {Scientific Reports}, volume = {8}, pages = {17593}, year = {2018},
  doi = {10.1038/s41598-018-35934-y}}"""


class Fractions(Featurizer):
    name = "fractions"
    version = "1"
    shape = (len(ELEMENTS_86),)
    labels = list(ELEMENTS_86)

    def encodable(self, batch: CompositionBatch) -> np.ndarray:
        z = np.asarray(batch.z, dtype=np.int64)
        return ((_COL_OF_Z[z] >= 0) | (z == 0)).all(axis=1)

    def transform(self, batch: CompositionBatch) -> np.ndarray:
        n = len(batch)
        z = np.asarray(batch.z, dtype=np.int64)
        frac = batch.fractions
        ok = self.encodable(batch)
        out = np.zeros((n, len(ELEMENTS_86)), dtype=np.float64)
        cell = (z > 0) & ok[:, None]
        rows = np.broadcast_to(np.arange(n)[:, None], z.shape)[cell]
        out[rows, _COL_OF_Z[z[cell]]] = frac[cell]  # elements are distinct within a row
        out[~ok] = np.nan
        return out

    def citations(self) -> list[str]:
        return [CITATION]

    def implementors(self) -> list[str]:
        return ["matstore"]
