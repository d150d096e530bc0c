"""Validity kernel against smact.screening.smact_validity on real and generated formulas."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from matstore import validity
from matstore.compositions import Composition, CompositionBatch, try_parse


def _batch(formulas):
    comps = [c for c in map(try_parse, formulas) if isinstance(c, Composition)]
    return comps, CompositionBatch.from_compositions(comps)


def _smact(formula, **kw):
    from smact.screening import smact_validity

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smact_validity(formula, **kw)


@pytest.fixture(scope="module")
def real_and_generated(read_formulas):
    gen = read_formulas("matgan/gan_icsd_generated_1024.csv")["formula"].to_list()
    oqmd = read_formulas("oqmd/formation_enthalpy_train.csv").sample(n=10_000, seed=3)["formula"].to_list()
    mp = read_formulas("mp/e_form.csv").sample(n=9_000, seed=4)["formula"].to_list()
    return _batch(gen + oqmd + mp)


@pytest.mark.slow
def test_smact_valid_equals_smact_validity(real_and_generated):
    comps, batch = real_and_generated
    ours = validity.check(batch)
    ref = np.array([_smact(c.formula) for c in comps])
    print(f"compared {len(comps):,} compositions with smact_validity; {ref.sum():,} valid")
    assert len(comps) >= 20_000
    assert np.array_equal(ours["smact_valid"], ref)
    assert ours["supported"].all()


def test_separate_checks_equal_smact_options(real_and_generated):
    """charge_neutral = smact without Pauling test and alloy shortcut; balanced = without alloys."""
    comps, batch = real_and_generated
    multi = [i for i, c in enumerate(comps) if c.n_elements > 1][::7]
    ours = validity.check(CompositionBatch.from_compositions([comps[i] for i in multi]))
    cn = np.array([_smact(comps[i].formula, include_alloys=False, use_pauling_test=False) for i in multi])
    en = np.array([_smact(comps[i].formula, include_alloys=False) for i in multi])
    assert np.array_equal(ours["charge_neutral"], cn)
    assert np.array_equal(ours["electronegativity_balanced"], en)
    assert cn.sum() > en.sum() > 0


def test_large_counts_take_the_exact_path():
    """Charge totals beyond 64 bits on both sides: the unbounded fallback must agree."""
    formulas = ["Li40Fe30O70", "Na33Cl33Mn40O80", "Ba70Ti70O210", "Fe77O100", "K65Ca33Cl131",
                "La50Ni50O150S1", "Cs90Br45I44", "Mn64O96Li2", "U35O93", "Ti80Nb23O203"]
    comps, batch = _batch(formulas)
    validity.kernel.exact_one.cache_clear()
    ours = validity.check(batch)
    assert validity.kernel.exact_one.cache_info().misses > 0
    assert ours["smact_valid"].tolist() == [_smact(c.formula) for c in comps]
    assert ours["charge_neutral"].tolist() == [
        _smact(c.formula, include_alloys=False, use_pauling_test=False) for c in comps]


def test_brute_force_on_small_set():
    """Enumerate every assignment (as smact does) for random 2-5 element compositions."""
    t = validity.tables()
    rng = np.random.default_rng(7)
    zs = [z for z in range(1, 104) if t.states[z]]
    for _ in range(300):
        els = rng.choice(zs, size=rng.integers(2, 6), replace=False)
        cnt = rng.integers(1, 9, size=len(els))
        b = CompositionBatch.from_lists([[validity.SYMBOLS[z] for z in els]], [cnt.tolist()])
        got = validity.check(b)
        neutral = balanced = False
        for ox in itertools.product(*(t.states[z] for z in b.z[0] if z)):
            if sum(o * c for o, c in zip(ox, b.counts[0])) == 0:
                neutral = True
                x = [t.eneg[z] for z in b.z[0] if z]
                if all(not (o1 > 0 > o2 and x1 >= x2) and not (o1 < 0 < o2 and x1 <= x2)
                       for (o1, x1), (o2, x2) in itertools.combinations(zip(ox, x), 2)) \
                        and not np.isnan(x).any():
                    balanced = True
        assert got["charge_neutral"][0] == neutral and got["electronegativity_balanced"][0] == balanced


def test_fast_paths_and_unsupported():
    comps, batch = _batch(["Fe", "Fe3Al", "CuZn", "Og2O", "Og", "HeO", "NaCl"])
    out = validity.check(batch)
    assert out["smact_valid"].tolist() == [True, True, True, False, True, False, True]
    assert out["supported"].tolist() == [True, True, True, False, True, True, True]
    with pytest.raises(KeyError):
        _smact("Og2O")  # smact raises; we flag it unsupported instead
    assert not out["charge_neutral"][0]  # a lone element has no zero oxidation state here


def test_repeats_cost_one_row_each():
    comps, batch = _batch(["NaCl", "Fe2O3", "NaCl", "Fe4O6", "LiCo2O4"])
    out = validity.check(batch)
    assert out["smact_valid"].tolist() == [True, True, True, True, False]
    assert validity.check(CompositionBatch.from_formulas([]))["smact_valid"].shape == (0,)


def test_checker_version_names_kernel_and_smact():
    assert validity.CHECKER_VERSION.startswith(validity.KERNEL_VERSION + "-smact")
