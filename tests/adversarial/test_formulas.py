"""Issue 22, finding 7: silent misparses become rejects with a reason, never another compound."""

from __future__ import annotations

import pytest

from matstore import compositions as C


@pytest.mark.parametrize("formula, reason", [
    ("CuSO4.5H2O", "ambiguous"),           # was Cu2H4S2O11
    ("Fe0O3", "zero amount for Fe"),        # was O
    ("Fe(O3)0", "zero amount"),             # was Fe
    ("Fe0.0O3", "zero amount"),
    ("H\u0663", "not ASCII"),               # Arabic-Indic three: was H
    ("Fe\uff12O3", "not ASCII"),            # a full-width 2
])
def test_misparses_are_rejects_with_a_reason(formula, reason):
    with pytest.raises(C.FormulaError, match=reason):
        C.parse(formula)


@pytest.mark.parametrize("formula, reduced", [
    ("CuSO4\u00b75H2O", "CuH10SO9"), ("CuSO4*5H2O", "CuH10SO9"), ("CuSO4(H2O)5", "CuH10SO9"),
    ("Li0.5CoO2", "Li(CoO2)2"), ("Fe2O3", "Fe2O3"),
])
def test_the_documented_spellings_still_parse(formula, reduced):
    assert C.parse(formula).formula == reduced
