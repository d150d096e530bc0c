"""The periodic table as the composition key uses it: symbols, Pauling electronegativity, the
element order of formulas and pymatgen's special-cased reduced formulas."""

from __future__ import annotations

import warnings

import numpy as np

MAX_Z = 118


def _element_table() -> tuple[list[str], dict[str, int], np.ndarray]:
    from pymatgen.core.periodic_table import Element  # noqa: PLC0415

    symbols = [""] * (MAX_Z + 1)
    x = np.full(MAX_Z + 1, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for elements with no Pauling X
        for el in Element:
            if 1 <= el.Z <= MAX_Z and not symbols[el.Z]:
                symbols[el.Z] = el.symbol
                x[el.Z] = el.X
    z_of = {s: z for z, s in enumerate(symbols) if s}
    return symbols, z_of, x


SYMBOLS, Z_OF, PAULING_X = _element_table()
# electronegativity for sorting (elements without one sort last), as pymatgen orders formulas
SORT_X = np.where(np.isnan(PAULING_X), np.inf, PAULING_X)
# reduced formulas pymatgen writes as molecules/peroxides
SPECIAL_FORMULAS = {"LiO": "Li2O2", "NaO": "Na2O2", "KO": "K2O2", "HO": "H2O2", "CsO": "Cs2O2",
            "RbO": "Rb2O2", "O": "O2", "N": "N2", "F": "F2", "Cl": "Cl2", "H": "H2"}


def sort_order(symbols) -> list[str]:
    """Symbols in formula order: by electronegativity, then by symbol."""
    return sorted(symbols, key=lambda s: (SORT_X[Z_OF[s]], s))
