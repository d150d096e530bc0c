import warnings

import numpy as np
import pytest

from matstore import compositions as C

ALL_FILES = ["oqmd/bandgap_train.csv", "oqmd/bandgap_val.csv", "oqmd/formation_enthalpy_train.csv",
             "mp/e_form.csv", "mp/gap.csv", "expt/expt_gap.csv", "matgan/gan_icsd_generated_1024.csv"]


@pytest.fixture(scope="module")
def all_formulas(read_formulas):
    fs = set()
    for f in ALL_FILES:
        fs.update(read_formulas(f)["formula"].to_list())
    return sorted(fs)


@pytest.mark.slow
def test_reduced_formula_matches_pymatgen_on_all_shared_data(all_formulas):
    from pymatgen.core import Composition

    warnings.simplefilter("ignore")
    mismatched, fractional = [], 0
    for f in all_formulas:
        ours = C.parse(f)
        ref = Composition(f)
        if all(abs(v - round(v)) < 1e-8 for v in ref.values()):
            if ours.formula != ref.reduced_formula:
                mismatched.append((f, ours.formula, ref.reduced_formula))
        else:
            # fractional input: pymatgen does not reduce; ours is the integer map of the same ratios
            fractional += 1
            assert Composition(ours.formula).fractional_composition.almost_equals(
                ref.fractional_composition), f
    assert len(all_formulas) > 390_000
    assert fractional > 400  # expt_gap has doped compositions such as Al0.01Cd0.99Sb0.01Te0.99
    assert mismatched == []


@pytest.mark.slow
def test_keys_unique_per_composition_and_batch_kernel_agrees(all_formulas):
    comps = [C.parse(f) for f in all_formulas]
    by_key = {}
    for c in comps:
        by_key.setdefault(c.composition_id, set()).add(c.counts and tuple(zip(c.elements, c.counts)))
    assert all(len(v) == 1 for v in by_key.values()), "two compositions share a key"
    batch = C.CompositionBatch.from_compositions(comps[:50_000])
    assert np.array_equal(C.keys_from_arrays(batch.z, batch.counts), batch.composition_id)
    # unreduced counts and shuffled element order give the same key
    rng = np.random.default_rng(0)
    perm = rng.permutation(batch.z.shape[1])
    assert np.array_equal(C.keys_from_arrays(batch.z[:, perm], batch.counts[:, perm] * 3),
                          batch.composition_id)


@pytest.mark.parametrize("a,b", [("Fe2O3", "Fe4O6"), ("Fe2O3", "O3Fe2"), ("Li0.5CoO2", "LiCo2O4"),
                                 ("CuSO4·5H2O", "CuS(O)9H10"), ("K4[Fe(CN)6]", "K4FeC6N6"),
                                 ("Y3N@C80", "Y3NC80"), ("Fe2O2.999999999999", "Fe2O3")])
def test_same_composition_same_key(a, b):
    assert C.parse(a).composition_id == C.parse(b).composition_id
    assert C.parse(a).formula == C.parse(b).formula


def test_fractional_amounts_reduce_to_integers():
    c = C.parse("Ba0.95Sr0.05TiO3")
    assert c.as_dict() == {"Ba": 19, "Sr": 1, "Ti": 20, "O": 60}


@pytest.mark.parametrize("bad,reason", [("", "no element"), ("Xx2O", "unknown element 'Xx'"),
                                        ("Fe(O", "unbalanced"), ("Fe-1O", "unexpected text"),
                                        ("Fe0O0", "all amounts are zero"), ("123", "no element")])
def test_bad_formulas_name_input_and_reason(bad, reason):
    with pytest.raises(C.FormulaError) as e:
        C.parse(bad)
    assert reason in str(e.value) and repr(bad) in str(e.value)
    assert reason in C.try_parse(bad)
