"""One batch of generator samples after the device: decoded, keyed, and checked against the
element/count maps the keys already name (in the store, earlier in the run or in the batch)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np

from . import compositions
from .features import onehot
from .store import Store


@dataclass
class DecodedBatch:
    """One batch after the device: keys of the decodable samples and what new keys need."""

    batch_no: int
    n_samples: int
    sample_no: np.ndarray      # int64, run-global index of each decodable sample
    keys: np.ndarray           # int64 composition keys, same length
    z: np.ndarray              # decoded rows of the decodable samples (for new formulas)
    counts: np.ndarray
    fingerprint: np.ndarray | None = None   # compositions.fingerprints of the same rows


def decode_batch(maps, tolerance: float | None, batch_no: int, first_sample: int) -> DecodedBatch:
    """(m, 8, 85) generator output (numpy or torch, any device) -> keys of decodable samples.

    On an accelerator the decode runs there (onehot.decode's torch path) and only the small
    (m, 8) integer arrays come back; on the CPU the sparse numpy kernel is used."""
    if hasattr(maps, "detach") and maps.device.type != "cpu":
        kw = {} if tolerance is None else {"tolerance": tolerance}
        z, counts, ok = (_numpy(a) for a in onehot.decode(maps, **kw))
    else:
        z, counts, ok = onehot.decode_numpy(_numpy(maps), tolerance)
    idx = np.flatnonzero(ok)
    z, counts = z[idx], counts[idx]
    keys, fp = compositions.keys_and_fingerprints(z, counts)
    return DecodedBatch(batch_no, len(ok), idx.astype(np.int64) + first_sample, keys, z, counts, fp)


def decode_rows(z, counts, batch_no: int, first_sample: int) -> DecodedBatch:
    """Sampled compositions as padded (z, counts) rows (a sequence generator's samples) -> the
    batch of its rows that hold at least one element."""
    z, counts = np.asarray(z, np.int64), np.asarray(counts, np.int64)
    ok = ((z > 0) & (counts > 0)).any(axis=1)
    idx = np.flatnonzero(ok)
    z, counts = z[idx], counts[idx]
    keys, fp = compositions.keys_and_fingerprints(z, counts)
    return DecodedBatch(batch_no, len(ok), idx.astype(np.int64) + first_sample, keys, z, counts, fp)


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


BY_FORMULA = -2   # a stored map beyond compositions.FP_EXACT_*: compared by formula


def known_keys(store: Store) -> tuple[dict[int, int], dict[int, str]]:
    """Stored keys -> fingerprint of their stored map (compositions.fingerprints), or BY_FORMULA
    for maps where a fingerprint match could be forged; those keys' formulas in the second dict."""
    with store.connect() as con:
        t = con.sql("SELECT composition_id, elements, counts FROM compositions").to_arrow_table()
        big = dict(con.sql(f"SELECT composition_id, formula FROM compositions "
                           f"WHERE n_elements > {compositions.FP_EXACT_ELEMENTS} "
                           f"OR list_max(counts) > {compositions.FP_EXACT_COUNT}").fetchall())
    if t.num_rows == 0:
        return {}, {}
    fp = compositions.fingerprints_from_lists(t["elements"], t["counts"])
    known = dict(zip(t["composition_id"].to_numpy().tolist(), fp.tolist()))
    known.update(dict.fromkeys(big, BY_FORMULA))
    return known, big


def key_check(batch: DecodedBatch, known: dict[int, int], by_formula: dict[int, str] | None = None):
    """The batch's distinct keys, which of them are new, and the batch without samples whose key
    already names another element/count map (earlier in the batch, in the store, or earlier in
    this run): those are dropped, never recorded under the other map's key. Key and an independent
    63-bit fingerprint are compared, in numpy on the batch only; new keys enter `known`. Stored
    maps beyond compositions.FP_EXACT_ELEMENTS/FP_EXACT_COUNT (marked BY_FORMULA, formulas in
    by_formula) are compared by formula, once per key. Returns (batch, n_dropped, uniq, first, new)."""
    uniq, first, inv = np.unique(batch.keys, return_index=True, return_inverse=True)
    fp = batch.fingerprint if batch.fingerprint is not None else compositions.fingerprints(batch.z, batch.counts)
    fpf = fp[first]
    ul = uniq.tolist()
    prev = np.fromiter(map(known.get, ul, repeat(-1)), np.int64, len(ul))  # fingerprints are >= 0
    new = prev == -1
    for i in np.flatnonzero(prev == BY_FORMULA):   # rare: a stored map a fingerprint cannot vouch for
        j = first[i]
        if compositions.from_arrays(batch.z[j], batch.counts[j]).formula == (by_formula or {}).get(ul[i]):
            known[ul[i]] = prev[i] = fpf[i]       # the same map: later batches compare fingerprints
    other = ~new & (prev != fpf)              # the key names another map already
    known.update(zip(uniq[new].tolist(), fpf[new].tolist()))
    clash = (fp != fpf[inv]) | other[inv]
    n = int(clash.sum())
    if n:
        keep = ~clash
        batch = DecodedBatch(batch.batch_no, batch.n_samples, batch.sample_no[keep], batch.keys[keep],
                             batch.z[keep], batch.counts[keep], fp[keep])
        new_keys = uniq[new]
        uniq, first = np.unique(batch.keys, return_index=True)
        new = np.isin(uniq, new_keys)
    return batch, n, uniq, first, new
