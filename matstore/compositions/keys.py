"""The 64-bit composition key and the independent 63-bit fingerprint, as uint64 array arithmetic
(millions of generated samples keyed without a Python loop), with scalar twins for one map."""

from __future__ import annotations

import numpy as np

from .elements import Z_OF

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def keys_from_arrays(z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Composition keys for a padded batch: z[n, k] atomic numbers (0 = empty), counts[n, k].

    Counts need not be reduced; each row is divided by its gcd first. The key is
    mix(sum over elements of mix(Z << 32 | count)), independent of element order.
    """
    z, reduced, present = _reduced_rows(z, counts)
    return _key_of(z, reduced, present)


def _reduced_rows(z, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, counts divided by each row's gcd, present mask) as uint64 arrays."""
    z = np.asarray(z, dtype=np.uint64)
    counts = np.asarray(counts, dtype=np.int64)
    present = (z > 0) & (counts > 0)
    g = np.gcd.reduce(np.where(present, counts, 0), axis=1)
    g[g == 0] = 1
    return z, (counts // g[:, None]).astype(np.uint64), present


def _key_of(z, reduced, present) -> np.ndarray:
    per = mix64((z << np.uint64(32)) | reduced)
    with np.errstate(over="ignore"):
        total = np.where(present, per, np.uint64(0)).sum(axis=1, dtype=np.uint64)
    return mix64(total).view(np.int64)


def _fingerprint_of(z, reduced, present) -> np.ndarray:
    with np.errstate(over="ignore"):
        per = mix64(((reduced << np.uint64(8)) | z) ^ _FP_SALT)  # not the key's (Z << 32 | count)
        total = np.where(present, per, np.uint64(0)).sum(axis=1, dtype=np.uint64)
    return (mix64(total ^ _FP_SALT) >> np.uint64(1)).view(np.int64)  # >= 0: -1 is free as "none"


_FP_SALT = np.uint64(0xD6E8FEB86659FD93)  # a second, independent key for exactness checks


def keys_and_fingerprints(z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """keys_from_arrays and fingerprints in one pass (the gcd reduction is shared)."""
    rows = _reduced_rows(z, counts)
    return _key_of(*rows), _fingerprint_of(*rows)


def fingerprints(z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A second (63-bit, non-negative) hash of the same reduced map, independent of the key (other
    salt and packing). key + fingerprint together is what the generate runner compares with the
    maps it has seen, without keeping every map in memory; see docs/security.md for the margin."""
    return _fingerprint_of(*_reduced_rows(z, counts))


# Maps with at most FP_EXACT_ELEMENTS elements and counts <= FP_EXACT_COUNT: a key + fingerprint
# match (127 bits) is as good as equal there. Forging one needs a generalized birthday search whose
# lists are element slots of at most 118 * 1024 entries (~2^17) against the 2^32 per list that
# 8 lists need for 127 bits, or a plain birthday search of 2^63 evaluations. Larger maps can be
# forged cheaply (32 lists of 2^21), so the runner compares those by formula.
FP_EXACT_ELEMENTS = 8
FP_EXACT_COUNT = 1024


def fingerprints_from_lists(elements, counts) -> np.ndarray:
    """fingerprints() of Arrow list columns (the store's elements VARCHAR[], counts INTEGER[])."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    elements = elements.combine_chunks() if isinstance(elements, pa.ChunkedArray) else elements
    counts = counts.combine_chunks() if isinstance(counts, pa.ChunkedArray) else counts
    n = len(elements)
    lens = pc.list_value_length(elements).to_numpy(zero_copy_only=False).astype(np.int64)
    k = int(lens.max()) if n else 1
    flat_el = pc.list_flatten(elements).dictionary_encode()
    z_of_dict = np.array([Z_OF.get(s, 0) for s in flat_el.dictionary.to_pylist()], np.int64)
    flat_z = z_of_dict[flat_el.indices.to_numpy(zero_copy_only=False)] if len(flat_el) else np.zeros(0, np.int64)
    flat_c = pc.list_flatten(counts).to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.repeat(np.arange(n), lens)
    pos = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
    z = np.zeros((n, max(k, 1)), np.int64)
    c = np.zeros((n, max(k, 1)), np.int64)
    z[rows, pos], c[rows, pos] = flat_z, flat_c
    return fingerprints(z, c)


_MASK = (1 << 64) - 1


def mix64_int(x: int) -> int:
    """Scalar twin of mix64 (plain ints are ~50x cheaper than 1-element numpy arrays)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def composition_key(counts: dict[str, int]) -> int:
    """Key of a reduced integer map; equals keys_from_arrays on the same composition."""
    total = sum(mix64_int((Z_OF[s] << 32) | n) for s, n in counts.items()) & _MASK
    key = mix64_int(total)
    return key - (1 << 64) if key >= 1 << 63 else key

