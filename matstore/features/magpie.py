"""Magpie element-property statistics: matminer's ElementProperty.from_preset("magpie"), batched.

132 values per composition in matminer's order: for each of the 22 properties, the statistics
minimum, maximum, range, mean, avg_dev, mode. Element data is matminer's packaged magpie table
(MagpieData, impute_nan=True like the preset's default: missing values are the property's mean).

matminer's definitions, reproduced over a padded batch (z[n, k], weights = element amounts):
- minimum/maximum/range: NaN if any element's value is NaN;
- mean = sum(x w) / sum(w); avg_dev = sum(|x - mean| w) / sum(w);
- mode = smallest value among the elements whose weight is np.isclose to the largest weight
  (NaN if one of those is NaN).
`as_matrix(x)` views the 132 values as the thesis CNN input: 22 rows (properties, in the order
below) x 6 columns (min, max, range, mean, avg_dev, mode), Table 4.1 / eq. 4-1.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..compositions import MAX_Z, CompositionBatch
from .base import Featurizer

PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa",
    "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)
STATS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
_CHUNK = 1 << 16  # rows per pass: bounds the (rows, k, 22) float64 temporaries


@lru_cache(maxsize=2)
def element_table(impute_nan: bool = True) -> np.ndarray:
    """(119, 22) float64: row Z = element Z's magpie values (row 0 unused, NaN)."""
    from matminer.utils.data import MagpieData
    from pymatgen.core.periodic_table import Element

    data = MagpieData(impute_nan=impute_nan)
    table = np.full((MAX_Z + 1, len(PROPERTIES)), np.nan)
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        table[z] = [data.get_elemental_property(el, p) for p in PROPERTIES]
    return table


def as_matrix(x: np.ndarray) -> np.ndarray:
    """(n, 132) -> (n, 22, 6): rows = properties, columns = minimum..mode (a view)."""
    return np.asarray(x).reshape(-1, len(PROPERTIES), len(STATS))


def _stats(table: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    present = (z > 0)[:, :, None]
    x = table[z]                                        # (n, k, p); padding rows are NaN
    w3 = w[:, :, None]
    lo = np.where(present, x, np.inf).min(axis=1)       # NaN propagates like matminer's test
    hi = np.where(present, x, -np.inf).max(axis=1)
    xp = np.where(present, x, 0.0)
    total = w.sum(axis=1)[:, None]
    mean = (xp * w3).sum(axis=1) / total
    dev = (np.where(present, np.abs(x - mean[:, None, :]), 0.0) * w3).sum(axis=1) / total
    wmax = w.max(axis=1, keepdims=True)
    tie = (np.abs(w - wmax) <= 1e-8 + 1e-5 * np.abs(wmax)) & (z > 0)   # np.isclose defaults
    mode = np.where(tie[:, :, None], x, np.inf).min(axis=1)
    return np.stack([lo, hi, hi - lo, mean, dev, mode], axis=2).reshape(len(z), -1)


class Magpie(Featurizer):
    name = "magpie"
    version = "1"
    shape = (len(PROPERTIES) * len(STATS),)
    labels = [f"MagpieData {s} {p}" for p in PROPERTIES for s in STATS]

    def __init__(self, impute_nan: bool = True):
        self.impute_nan = impute_nan
        if not impute_nan:
            self.name = "magpie_raw"

    def transform(self, batch: CompositionBatch) -> np.ndarray:
        table = element_table(self.impute_nan)
        z = np.asarray(batch.z, dtype=np.int64)
        w = np.where(z > 0, np.asarray(batch.counts), 0).astype(np.float64)
        out = np.empty((len(z), self.size), dtype=np.float64)
        for s in range(0, len(z), _CHUNK):
            out[s:s + _CHUNK] = _stats(table, z[s:s + _CHUNK], w[s:s + _CHUNK])
        return out
