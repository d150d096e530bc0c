"""The MatGAN 8x85 one-hot map and its decoder.

maps[i, j, e] = 1 iff element ELEMENTS_85[e] has count j + 1 in composition i (rows = count
classes 1..8, columns = the 85 elements of matgan/periodic_table_85.csv; the "8x85" of the
papers; MatGAN's own code stores the transpose, 85x8, with the same cells).

Decoding follows MatGAN's generate_data.reduce_molecule: a cell is set when
1 - tolerance <= value <= 1 (its default tolerance is 0.8, i.e. value >= 0.2). An element column
with several set cells takes the largest count (MatGAN fills a dict row by row, so the last set
cell wins). A map with no set cell, or with more than 8 elements, is not decodable (MatGAN's
screen drops both; single-element maps stay decodable, screening them is the caller's choice).
"""

from __future__ import annotations

import numpy as np

from ..compositions import Z_OF, CompositionBatch, keys_from_arrays
from ..elements85 import ELEMENTS_85
from .base import Featurizer, FeaturizerError

N_COUNTS = 8
N_ELEMENTS = len(ELEMENTS_85)
MAX_ELEMENTS = 8               # decoded compositions hold at most 8 elements (z is (n, 8))
DEFAULT_TOLERANCE = 0.8        # MatGAN Config.tolerate
Z_85 = np.array([Z_OF[s] for s in ELEMENTS_85], dtype=np.int64)
_COL_OF_Z = np.full(119, -1, dtype=np.int64)
_COL_OF_Z[Z_85] = np.arange(N_ELEMENTS)


def encodable(batch: CompositionBatch) -> np.ndarray:
    """bool (n,): every element is one of the 85 and every count is 1..8."""
    z = np.asarray(batch.z, dtype=np.int64)
    c = np.asarray(batch.counts, dtype=np.int64)
    present = z > 0
    ok = (_COL_OF_Z[z] >= 0) & (c >= 1) & (c <= N_COUNTS)
    return (ok | ~present).all(axis=1) & present.any(axis=1)


def encode(batch: CompositionBatch) -> tuple[np.ndarray, np.ndarray]:
    """(maps float32 (n, 8, 85), encodable bool (n,)); unencodable rows are all zero."""
    n = len(batch)
    ok = encodable(batch)
    z = np.asarray(batch.z, dtype=np.int64)
    c = np.asarray(batch.counts, dtype=np.int64)
    maps = np.zeros((n, N_COUNTS, N_ELEMENTS), dtype=np.float32)
    cell = (z > 0) & ok[:, None]
    rows = np.broadcast_to(np.arange(n)[:, None], z.shape)[cell]
    maps[rows, c[cell] - 1, _COL_OF_Z[z[cell]]] = 1.0
    return maps, ok


def _as_3d(maps):
    if tuple(maps.shape[-2:]) != (N_COUNTS, N_ELEMENTS):
        raise FeaturizerError(f"one-hot maps must end in shape (8, 85), got {tuple(maps.shape)}")
    return maps.reshape(-1, N_COUNTS, N_ELEMENTS)


def decode(maps, tolerance: float = DEFAULT_TOLERANCE):
    """Maps (n, 8, 85) (or (n, 1, 8, 85)) -> (z (n, 8), counts (n, 8), decodable (n,)).

    numpy in -> numpy out; torch in -> torch ops on the same device, torch out. z are atomic
    numbers in periodic-table order, 0-padded; undecodable rows are all zero.
    """
    if not isinstance(maps, np.ndarray) and type(maps).__module__.startswith("torch"):
        return _decode_torch(maps, tolerance)
    v = _as_3d(np.asarray(maps))
    hit = (v >= 1 - tolerance) & (v <= 1)
    cnt = (hit * np.arange(1, N_COUNTS + 1)[None, :, None]).max(axis=1)   # (n, 85)
    has = cnt > 0
    nel = has.sum(axis=1)
    ok = (nel >= 1) & (nel <= MAX_ELEMENTS)
    idx = np.argsort(~has, axis=1, kind="stable")[:, :MAX_ELEMENTS]      # set columns first
    keep = np.take_along_axis(has, idx, 1) & ok[:, None]
    z = np.where(keep, Z_85[idx], 0)
    counts = np.where(keep, np.take_along_axis(cnt, idx, 1), 0).astype(np.int64)
    return z, counts, ok


def _decode_torch(maps, tolerance: float):
    import torch

    v = _as_3d(maps)
    hit = (v >= 1 - tolerance) & (v <= 1)
    j = torch.arange(1, N_COUNTS + 1, device=v.device).view(1, N_COUNTS, 1)
    cnt = (hit.to(torch.int64) * j).amax(dim=1)
    has = cnt > 0
    nel = has.sum(dim=1)
    ok = (nel >= 1) & (nel <= MAX_ELEMENTS)
    idx = torch.sort((~has).to(torch.uint8), dim=1, stable=True).indices[:, :MAX_ELEMENTS]
    keep = has.gather(1, idx) & ok[:, None]
    z85 = torch.as_tensor(Z_85, device=v.device)
    z = torch.where(keep, z85[idx], torch.zeros_like(idx))
    counts = torch.where(keep, cnt.gather(1, idx), torch.zeros_like(idx))
    return z, counts, ok


def decode_to_keys(maps, tolerance: float = DEFAULT_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Composition keys (int64 numpy, 0 where undecodable) and the decodable mask (numpy)."""
    z, counts, ok = decode(maps, tolerance)
    if not isinstance(z, np.ndarray):
        z, counts, ok = z.cpu().numpy(), counts.cpu().numpy(), ok.cpu().numpy()
    keys = keys_from_arrays(z, counts)
    return np.where(ok, keys, 0), ok


CITATION = """@article{dan2020matgan,
  author = {Dan, Yabo and Zhao, Yong and Li, Xiang and Li, Shaobo and Hu, Ming and Hu, Jianjun},
  title = {Generative adversarial networks ({GAN}) based efficient sampling of chemical
           composition space for inverse design of inorganic materials},
  journal = {npj Computational Materials}, volume = {6}, pages = {84}, year = {2020},
  doi = {10.1038/s41524-020-00352-0}}"""


class OneHot(Featurizer):
    name = "onehot"
    version = "1"
    shape = (N_COUNTS, N_ELEMENTS)
    labels = [f"{el}{j + 1}" for j in range(N_COUNTS) for el in ELEMENTS_85]

    def transform(self, batch: CompositionBatch) -> np.ndarray:
        return encode(batch)[0]

    def encodable(self, batch: CompositionBatch) -> np.ndarray:
        return encodable(batch)

    def citations(self) -> list[str]:
        return [CITATION]

    def implementors(self) -> list[str]:
        return ["matstore"]

# --- the CPU kernel: equal to decode(), tests prove it -----------------------------------------
_DECODE_ROWS = 4096


def decode_numpy(maps, tolerance: float | None = None):
    """decode's answer for numpy maps, scanning only the set cells (~4x faster on CPU)."""
    tol = DEFAULT_TOLERANCE if tolerance is None else tolerance
    cells = N_COUNTS * N_ELEMENTS
    v = np.asarray(maps).reshape(-1, cells)
    n = len(v)
    cnt = np.zeros((n, N_ELEMENTS), np.int8)
    flat = v.reshape(-1)
    thr = np.asarray(1 - tol, v.dtype) if v.dtype.kind == "f" else 1 - tol
    # the set cells, scanned in cache-sized blocks of rows (generator maps are sparse)
    step = _DECODE_ROWS * cells
    idx = np.concatenate([np.flatnonzero(flat[s:s + step] >= thr) + s
                          for s in range(0, len(flat), step)] or [np.zeros(0, np.int64)])
    if len(idx) <= 16 * n:
        idx = idx[flat[idx] <= 1]
        row, cell = np.divmod(idx, cells)
        j, e = np.divmod(cell, N_ELEMENTS)
        np.maximum.at(cnt, (row, e), (j + 1).astype(np.int8))   # the largest set count
    else:                                  # dense maps (e.g. an untrained generator)
        hit = ((flat >= thr) & (flat <= 1)).reshape(n, N_COUNTS, N_ELEMENTS)
        for j in range(N_COUNTS):   # the largest set count of each element column
            np.maximum(cnt, hit[:, j].view(np.int8) * np.int8(j + 1), out=cnt)
    nel = np.count_nonzero(cnt, axis=1)
    ok = (nel >= 1) & (nel <= MAX_ELEMENTS)
    cnt[nel > MAX_ELEMENTS] = 0     # undecodable: too many elements
    r, e = np.nonzero(cnt)                 # row-major: each row's columns in table order
    start = np.zeros(n + 1, np.int64)
    np.cumsum(np.where(ok, nel, 0), out=start[1:])
    pos = np.arange(len(r)) - start[r]
    z = np.zeros((n, MAX_ELEMENTS), np.int64)
    c = np.zeros((n, MAX_ELEMENTS), np.int64)
    z[r, pos] = Z_85[e]
    c[r, pos] = cnt[r, e]
    return z, c, ok
