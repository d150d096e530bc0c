"""Featurizers against the reference libraries on real data (../shared/data)."""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest

from matstore.compositions import Composition, CompositionBatch, keys_from_arrays, parse, try_parse
from matstore.features import FEATURIZERS, get
from matstore.features import magpie as magpie_mod
from matstore.features import onehot
from matstore.features.fractions import ELEMENTS_86


def _comps(formulas):
    pairs = [(f, c) for f, c in zip(formulas, map(try_parse, formulas)) if isinstance(c, Composition)]
    return [f for f, _ in pairs], CompositionBatch.from_compositions([c for _, c in pairs])


def _sample(read_formulas, rel, n, seed=0):
    df = read_formulas(rel)
    return df.sample(n=min(n, df.height), seed=seed)["formula"].to_list()


@pytest.fixture(scope="module")
def magpie_formulas(read_formulas):
    """>= 10,000 real compositions (OQMD + MP) plus every MatGAN-generated formula."""
    return (_sample(read_formulas, "oqmd/formation_enthalpy_train.csv", 5000)
            + _sample(read_formulas, "mp/e_form.csv", 5000)
            + read_formulas("matgan/gan_icsd_generated_1024.csv")["formula"].to_list())


def _compare(ours, ref):
    """NaN in the same places; max relative difference (an absolute 1e-12 x column scale is
    allowed where both are ~0, e.g. avg_dev of equal values)."""
    assert ours.shape == ref.shape
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    both = ~np.isnan(ref)
    diff = np.abs(ours - ref)
    scale = np.nanmax(np.abs(ref), axis=0, keepdims=True)
    tiny = diff <= 1e-12 * np.maximum(scale, 1.0)
    rel = np.where(both & ~tiny, diff / np.maximum(np.abs(ref), 1e-300), 0.0)
    return float(rel.max())


@pytest.mark.parametrize("impute_nan", [pytest.param(True, marks=pytest.mark.slow), False])
def test_magpie_equals_matminer(magpie_formulas, impute_nan):
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition as PmgComposition

    # the raw table has gaps (noble gases, heavy elements): add compositions that hit them
    extra = ["HeO", "NaAt", "Fr2O", "CfCl3", "Og2Fe", "Ne", "ArXe"]
    formulas, batch = _comps(magpie_formulas if impute_nan else magpie_formulas[::16] + extra)
    if impute_nan:
        assert len(batch) >= 10_000 + 1700
    ep = ElementProperty.from_preset("magpie", impute_nan=impute_nan)
    feat = magpie_mod.Magpie(impute_nan=impute_nan)
    assert feat.labels == ep.feature_labels()
    ours = feat.transform(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([ep.featurize(PmgComposition(f)) for f in formulas], dtype=float)
    assert _compare(ours, ref) <= 1e-6
    if not impute_nan:
        assert np.isnan(ref).any()  # the raw table's gaps are exercised


def test_magpie_matrix_layout():
    x = get("magpie").transform(CompositionBatch.from_formulas(["NaCl", "Fe2O3"]))
    m = magpie_mod.as_matrix(x)
    assert m.shape == (2, 22, 6)
    assert m[0, 0, 0] == 11 and m[0, 0, 1] == 17 and m[0, 0, 2] == 6  # Number: min, max, range
    assert m[1, 0, 3] == pytest.approx((2 * 26 + 3 * 8) / 5)           # Number mean of Fe2O3
    assert m[1, 0, 5] == 8                                               # mode: O has most atoms


@pytest.mark.slow
def test_onehot_roundtrip_oqmd(read_formulas):
    formulas = read_formulas("oqmd/formation_enthalpy_train.csv")["formula"].to_list()
    _, batch = _comps(formulas)
    maps, ok = onehot.encode(batch)
    assert maps.shape == (len(batch), 8, 85) and maps.dtype == np.float32
    expect = np.array([all(e in onehot.ELEMENTS_85 for e in batch.elements(i))
                       and batch.counts[i].max() <= 8 for i in range(len(batch))])
    assert np.array_equal(ok, expect) and ok.sum() > 0.9 * len(batch)
    assert np.array_equal(maps.sum(axis=(1, 2)), np.where(ok, (batch.z > 0).sum(1), 0))
    keys, dec = onehot.decode_to_keys(maps)
    assert np.array_equal(dec, ok)
    assert np.array_equal(keys[ok], batch.composition_id[ok])


def test_onehot_cell_layout():
    maps, ok = onehot.encode(CompositionBatch.from_formulas(["Na2ThF6", "Kr2O", "Fe9O"]))
    assert ok.tolist() == [True, False, False]  # Kr is not among the 85; count 9 > 8
    i = onehot.ELEMENTS_85.index
    assert maps[0, 1, i("Na")] == 1 and maps[0, 0, i("Th")] == 1 and maps[0, 5, i("F")] == 1
    assert maps[0].sum() == 3 and maps[1:].sum() == 0


def test_decode_rules():
    i = onehot.ELEMENTS_85.index
    m = np.zeros((5, 8, 85), np.float32)
    m[0, 0, i("Na")], m[0, 1, i("Cl")] = 0.95, 0.3          # both >= 1 - 0.8
    m[1, 0, i("Fe")], m[1, 2, i("Fe")], m[1, 1, i("O")] = 0.85, 0.85, 0.85  # two cells: largest wins
    m[2, 0, i("Fe")] = 0.1                                    # below threshold: empty map
    m[3, 0, :9] = 1.0                                          # 9 elements: beyond z's 8 slots
    m[4, 3, i("O")] = 1.0                                      # one element: decodable
    z, c, ok = onehot.decode(m)
    assert ok.tolist() == [True, True, False, False, True]
    assert parse("NaCl2").composition_id == keys_from_arrays(z[:1], c[:1])[0]
    assert sorted(zip(z[1][z[1] > 0], c[1][z[1] > 0])) == [(8, 2), (26, 3)]
    assert not z[2].any() and not c[3].any()
    zs, cs, strict = onehot.decode(m, tolerance=0.1)
    assert strict.tolist() == [True, False, False, False, True]  # 0.3 and 0.85 no longer count
    assert zs[0].tolist() == [11] + [0] * 7 and cs[0, 0] == 1


def test_decode_torch_same_as_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    m = (rng.random((500, 1, 8, 85)) ** 60).astype(np.float32)  # sparse sigmoid-like maps
    zn, cn, okn = onehot.decode(m, tolerance=0.5)
    zt, ct, okt = onehot.decode(torch.from_numpy(m), tolerance=0.5)
    assert isinstance(zt, torch.Tensor) and okn.any() and (~okn).any()
    assert np.array_equal(zn, zt.numpy()) and np.array_equal(cn, ct.numpy())
    assert np.array_equal(okn, okt.numpy())


def test_decode_rejects_wrong_shape():
    with pytest.raises(ValueError, match="8, 85"):
        onehot.decode(np.zeros((2, 85, 8)))


def test_fractions_equal_pymatgen(read_formulas):
    from pymatgen.core import Composition as PmgComposition

    formulas, batch = _comps(_sample(read_formulas, "mp/e_form.csv", 2000, seed=1) + ["HeO", "Kr2O"])
    feat = get("fractions")
    x = feat.transform(batch)
    ok = feat.encodable(batch)
    assert len(ELEMENTS_86) == 86 and feat.labels[:3] == ["H", "Li", "Be"] and "Kr" in feat.labels
    assert ok[-1] and not ok[-2] and np.isnan(x[-2]).all()
    for f, row, good in zip(formulas, x, ok):
        if good:
            pc = PmgComposition(f)
            ref = np.array([pc.get_atomic_fraction(e) for e in ELEMENTS_86])
            np.testing.assert_allclose(row, ref, rtol=1e-12, atol=1e-15)


def test_concat_is_its_parts_side_by_side(read_formulas):
    formulas, batch = _comps(_sample(read_formulas, "oqmd/formation_enthalpy_train.csv", 1000, seed=3)
                             + ["HeO", "Kr2O"])
    both = get("fractions+magpie")
    frac, mag = get("fractions"), get("magpie")
    assert both.name == "fractions+magpie" and both.shape == (86 + 132,)
    assert both.version == f"{frac.version}+{mag.version}" and both.labels == frac.labels + mag.labels
    x = both.transform(batch)
    ok = both.encodable(batch)
    assert np.array_equal(ok, frac.encodable(batch) & mag.encodable(batch)) and not ok[-2]
    assert np.isnan(x[~ok]).all()
    np.testing.assert_array_equal(x[ok], np.hstack([frac.transform(batch), mag.transform(batch)])[ok])
    with pytest.raises(ValueError, match="unknown featurizer 'nope'"):
        get("magpie+nope")


def test_registry():
    assert set(FEATURIZERS) == {"onehot", "magpie", "fractions"}
    for name in FEATURIZERS:
        f = get(name)
        assert f.name == name and len(f.labels) == f.size
        x = f.transform(CompositionBatch.from_formulas(["NaCl"]))
        assert x.shape == (1, *f.shape)
    with pytest.raises(ValueError, match="unknown featurizer 'nope'"):
        get("nope")


def test_elements85_match_shared_csv(shared_data):
    rows = [l.strip() for l in (shared_data / "matgan/periodic_table_85.csv").read_text().splitlines() if l.strip()]
    assert tuple(rows) == onehot.ELEMENTS_85


@pytest.mark.parametrize("impute_nan", [True, False])
def test_element_table_equals_magpiedata(impute_nan):
    from matminer.utils.data import MagpieData
    from pymatgen.core.periodic_table import Element

    data = MagpieData(impute_nan=impute_nan)
    ref = np.array([[data.get_elemental_property(Element.from_Z(z), p) for p in magpie_mod.PROPERTIES]
                    for z in range(1, 119)])
    assert np.array_equal(magpie_mod.element_table(impute_nan)[1:], ref, equal_nan=True)
