"""compositions.parse_formulas (a whole column at once) gives parse()'s answers and refusals: on
every formula of the real data, on their reduced formulas (bracketed polyanions) and on the
adversarial spellings; CompositionBatch.from_formulas equals the batch of parse() results."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matstore import compositions as C

FILES = ["oqmd/bandgap_train.csv", "oqmd/bandgap_val.csv", "oqmd/formation_enthalpy_train.csv",
         "mp/e_form.csv", "mp/gap.csv", "expt/expt_gap.csv", "matgan/gan_icsd_generated_1024.csv"]

# refusals and near-misses of the column grammar (plain symbols + integer amounts + one level of
# round brackets): each must be decided exactly as parse() decides it
ODD = ["CuSO4.5H2O", "Fe0O3", "Fe(O3)0", "Fe0.0O3", "H\u0663", "Fe\uff12O3", "CuSO4\u00b75H2O",
       "CuSO4*5H2O", "CuSO4(H2O)5", "Li0.5CoO2", "FeOFe", "Fe0", "Fe0O0", "H", "O", "NaO", " Fe2O3",
       "Fe2O3 ", "Fe2 O3", "Xx2O", "", "123", "Fe(O", "Fe-1O", "Fe1000000O", "Fe999999O999999",
       "Fe999999O2", "Fe0000002O03", "Li(CoO2)0", "(CoO2)2Li", "Li(CoO2)", "Li(CoO2)1",
       "Li(Fe2E3)2", "Li(Fe2Es3)2", "O(CoO)2", "Li((CoO2)2)", "Li(CoO2)2(CoO2)", "Li()2",
       "Li[CoO2]2", "(O)2", "Ba(Fe999999O2)999999", "Y3N@C80", "K4[Fe(CN)6]", "Fe2e3",
       "HHeLiBeBCNOFNeNaMgAlSiPSClArKCaScTiVCrMnFeCoNiCuZnGaGeAsSeBrKrRbSrYZrNbMoTcRuRhPd",
       "Fe" + "9" * 30, "Fe2O3" * 300, "Li" + "(Fe)" * 40, "Li40Fe30O70", "Ba70Ti70O210", "Ho2Hf"]


def _assert_same(formulas: list) -> C.FormulaColumn:
    col = C.parse_formulas(formulas)
    ref = [C.try_parse(f) for f in formulas]
    ok = np.array([isinstance(r, C.Composition) for r in ref])
    assert np.array_equal(col.ok, ok)
    assert col.reason == [None if isinstance(r, C.Composition) else r for r in ref]
    good = [r for r in ref if isinstance(r, C.Composition)]
    rows = pl.from_arrow(col.rows())
    assert rows["composition_id"].to_list() == [r.composition_id for r in good]
    assert rows["formula"].to_list() == [r.formula for r in good]
    assert rows["elements"].to_list() == [list(r.elements) for r in good]
    assert rows["counts"].to_list() == [list(r.counts) for r in good]
    assert rows["n_atoms"].to_list() == [r.n_atoms for r in good]
    return col


def test_adversarial_spellings_get_parses_answer():
    col = _assert_same(ODD + [None, 3, b"Fe2O3"])
    assert sum(r is not None for r in col.reason) > 20    # the refusals were exercised
    assert col.ok[ODD.index("CuSO4(H2O)5")] and col.ok[ODD.index("Fe0000002O03")]


@pytest.mark.slow
def test_every_real_formula_and_its_reduced_formula(read_formulas):
    formulas = sorted({f for rel in FILES for f in read_formulas(rel)["formula"].to_list()})
    C.parse.cache_clear()   # the reference is parse() itself, not an earlier call's cache
    col = _assert_same(formulas)
    reduced = pl.from_arrow(col.rows())["formula"].unique().sort().to_list()
    assert len(formulas) > 390_000 and sum("(" in f for f in reduced) > 20_000
    _assert_same(reduced)


def test_batch_from_formulas_equals_batch_of_parsed(read_formulas):
    formulas = read_formulas("expt/expt_gap.csv")["formula"].to_list()   # brackets, decimals
    formulas += read_formulas("oqmd/formation_enthalpy_train.csv")["formula"].head(5000).to_list()
    want = C.CompositionBatch.from_compositions([C.parse(f) for f in formulas])
    got = C.CompositionBatch.from_formulas(formulas)
    for a in ("composition_id", "z", "counts"):
        assert np.array_equal(getattr(got, a), getattr(want, a)) and getattr(got, a).dtype == getattr(want, a).dtype
    with pytest.raises(C.FormulaError, match="zero amount for Fe"):
        C.CompositionBatch.from_formulas(["NaCl", "Fe0O3"])
    assert C.CompositionBatch.from_formulas([]).z.shape == (0, 1)
