"""The runner's CPU kernels equal the library answers: onehot.decode, compositions.from_arrays,
pymatgen's reduced_formula."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matstore import compositions
from matstore.features import onehot


def _noisy_maps(read_formulas, n=6000, seed=0):
    df = read_formulas("oqmd/bandgap_train.csv").sample(n, seed=seed)
    batch = compositions.CompositionBatch.from_formulas(df["formula"].to_list())
    maps, ok = onehot.encode(batch)
    rng = np.random.default_rng(seed)
    maps = maps[ok] * rng.uniform(0.5, 1.0, size=maps[ok].shape).astype(np.float32)
    noise = rng.uniform(0, 1, size=maps.shape).astype(np.float32)
    noise[rng.uniform(size=maps.shape) > 0.004] = 0                     # ~3 noisy cells a map
    maps = np.maximum(maps, noise)
    maps[:50] = 0.0                                          # empty maps
    maps[50:100, 2, :12] = 0.9                               # > 8 elements
    maps[100:200, :, 5] = rng.uniform(0, 1, size=(100, 8))   # several set cells in one column
    maps[200:210] = 1.5                                      # out of range values
    return maps


@pytest.mark.parametrize("tol", [0.8, 0.5, 0.05])
def test_decode_numpy_equals_onehot_decode(read_formulas, tol):
    maps = _noisy_maps(read_formulas)
    want = onehot.decode(maps, tol)
    got = onehot.decode_numpy(maps, tol)
    for w, g in zip(want, got):
        assert np.array_equal(np.asarray(w), g)
    assert 0 < got[2].sum() < len(maps)
    import torch
    t = onehot.decode(torch.as_tensor(maps), tol)
    assert all(np.array_equal(a.numpy(), b) for a, b in zip(t, got))


def _check_rows(z, c):
    tab = pl.from_arrow(compositions.composition_rows(z, c))
    ref = [compositions.from_arrays(z[i], c[i]) for i in range(len(z))]
    assert tab["formula"].to_list() == [r.formula for r in ref]
    assert tab["composition_id"].to_list() == [r.composition_id for r in ref]
    assert tab["elements"].to_list() == [list(r.elements) for r in ref]
    assert tab["counts"].to_list() == [list(r.counts) for r in ref]
    assert tab["n_elements"].to_list() == [r.n_elements for r in ref]
    assert tab["n_atoms"].to_list() == [r.n_atoms for r in ref]
    return tab


def test_composition_rows_equal_from_arrays_on_decoded_real_maps(read_formulas):
    maps = _noisy_maps(read_formulas, seed=1)
    z, c, ok = onehot.decode_numpy(maps)
    tab = _check_rows(z[ok], c[ok])
    assert tab["formula"].str.contains(r"\(").sum() > 0    # polyanion formulas were exercised


def test_composition_rows_equal_pymatgen_on_random_and_special_rows():
    from pymatgen.core import Composition

    rng = np.random.default_rng(3)
    n, k = 3000, 6
    z = rng.integers(1, 95, size=(n, k))
    c = rng.integers(1, 9, size=(n, k)) * rng.choice([1, 2, 3, 50], size=(n, 1))  # shared factors, big counts
    z[rng.uniform(size=(n, k)) < 0.3] = 0                          # padding in the middle
    z[:, 0] = np.where(z[:, 0] == 0, 8, z[:, 0])
    for i in range(n):                                             # distinct elements per row
        seen = set()
        for j in range(k):
            if z[i, j] in seen:
                z[i, j] = 0
            seen.add(z[i, j])
    special = [([3, 8], [1, 1]), ([8], [3]), ([1], [2]), ([1, 8], [2, 2]), ([11, 8], [5, 5]),
               ([3, 15, 8], [2, 2, 8]), ([26, 15, 8, 3], [1, 1, 4, 1])]
    zs = np.zeros((len(special), k), int)
    cs = np.zeros((len(special), k), int)
    for i, (zz, cc) in enumerate(special):
        zs[i, :len(zz)], cs[i, :len(cc)] = zz, cc
    z, c = np.vstack([z, zs]), np.vstack([c, cs])
    tab = _check_rows(z, c)
    for i in list(range(0, n, 10)) + list(range(n, n + len(special))):
        amounts = {compositions.SYMBOLS[a]: int(b) for a, b in zip(z[i], c[i]) if a > 0}
        assert tab["formula"][i] == Composition(amounts).reduced_formula, amounts


def test_decode_numpy_dense_maps_equal_onehot_decode():
    # an untrained generator's maps: most cells above the threshold (the dense path)
    rng = np.random.default_rng(5)
    maps = rng.uniform(0, 1, size=(3000, 8, 85)).astype(np.float32)
    maps[:1000] = (maps[:1000] > 0.995) * np.float32(0.9)     # sparse rows in the same batch
    for tol in (0.8, 0.2):
        want = onehot.decode(maps, tol)
        got = onehot.decode_numpy(maps, tol)
        for w, g in zip(want, got):
            assert np.array_equal(np.asarray(w), g)
        assert got[2].any()
