"""Chemical plausibility: SMACT's charge-neutrality and Pauling electronegativity rules at array speed,
for any of smact's oxidation-state sets, and one charge-neutral oxidation-state assignment per
valid composition (most common states first).

`smact.screening.smact_validity(formula, oxidation_states_set=SET)` enumerates every
oxidation-state combination in Python: fast for binaries, ~190/s for generated 5-8 element
formulas. It decides:

1. one element, or every element in smact's ``metals`` list (``include_alloys``) -> valid;
2. any element without states in the set -> invalid;
3. valid iff some assignment of one state per element gives sum(count * state) == 0 (counts are
   the reduced integer counts) and passes ``eneg_states_test``: every cation's Pauling
   electronegativity < every anion's, and any element without a Pauling value fails.

Sets (OXIDATION_SETS): smact's named sets ``icsd24`` (ICSD 2024, > 5 reports; the store's
DEFAULT_SET), ``icsd16``, ``smact14``, ``pymatgen_sp``, and ``icsd24c3``: what smact_validity
uses when no set is named (ICSD 2024 filtered at >= 3 reports), which was matstore's only checker
before sets were selectable. ``check(batch)`` with no set equals ``smact_validity(formula)`` with
no arguments, i.e. ``icsd24c3``; the store (validate, generate --validate, the views) uses
DEFAULT_SET. No set contains the state 0 (checked at load: the kernel relies on it).

The same question without enumeration: (3) means "sort the elements by electronegativity, cut
the list once (never between equal values); the left part takes positive states, the right part
negative ones, and the two sides' charge totals meet". Each side's reachable totals are a bitset
(a uint64 per row, bit v = total v reachable) built with one vectorized shift-or per element and
state, so a batch costs ~100 numpy operations whatever its size. A total above 63 can never meet
a side whose maximum is at most 63, so 64 bits are exact whenever one side's maximum is <= 63;
the few rows where both exceed it go to the same algorithm on Python integers (unbounded bitsets).

The assignment ("Mg2+ Zr4+ S2-") of an electronegativity-balanced composition is the one with
the highest sum over atoms of log p(element, state), p = the state's share of the element's
ICSD 2024 reports (smact's oxidation_states_icsd24_counts.json, zero excluded, add-one so a state
the ICSD never reports ranks last): the most probable assignment if each atom's state were drawn
from its ICSD frequencies. It is the same cut search with, instead of a bitset, the best score per
total (a max-plus dynamic program over totals, one (rows, width) array per side); ties go to the
state listed first (more reports), then to the lower total, then to more cations. Rows whose
totals exceed 127 on both sides take the same program on Python dicts.

Verdicts are for the reduced integer composition (the store's key). smact truncates fractional
amounts with int(), so ``smact_validity("Li0.5CoO2")`` is not the verdict for LiCo2O4; on integer
formulas the two agree (tests/test_validity.py and tests/test_validity_sets.py compare on >= 20,000
real and generated ones per set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .kernel import assign_states, check_unique
from .sets import (CHECKER_VERSION, DEFAULT_SET, KERNEL_VERSION, OXIDATION_SETS,
                   SMACT_DEFAULT_SET, OxidationSetError, checker_version, tables)

if TYPE_CHECKING:
    from ..compositions import CompositionBatch

__all__ = ["CHECKER_VERSION", "DEFAULT_SET", "KERNEL_VERSION", "OXIDATION_SETS", "SMACT_DEFAULT_SET",
           "OxidationSetError", "check", "checker_version", "ions", "tables"]


def __getattr__(name: str):
    # compositions (pymatgen) loads on first use, so the CLI can read OXIDATION_SETS cheaply
    if name in ("SYMBOLS", "MAX_Z"):
        from .. import compositions

        return getattr(compositions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check(batch: CompositionBatch, oxidation_set: str = SMACT_DEFAULT_SET,
          assign: bool = False) -> dict[str, np.ndarray]:
    """Validity flags for a batch under one oxidation-state set: bool arrays charge_neutral,
    electronegativity_balanced, smact_valid (= smact_validity(formula, oxidation_states_set=set);
    the default set is smact_validity's own default) and supported (False where smact itself
    would raise: an element beyond its data, Z > 103, outside the fast paths; the other flags are
    False there). assign=True adds oxidation_states: (n, k) ints, one state per batch slot, the
    most probable charge-neutral, Pauling-passing assignment where electronegativity_balanced,
    else zeros. Repeated compositions in the batch are computed once."""
    t = tables(oxidation_set)
    if len(batch) == 0:
        e = np.zeros(0, bool)
        out = dict(charge_neutral=e, electronegativity_balanced=e, smact_valid=e, supported=e)
        if assign:
            out["oxidation_states"] = np.zeros(np.asarray(batch.z).shape, np.int64)
        return out
    _, first, inverse = np.unique(batch.composition_id, return_index=True, return_inverse=True)
    z, c = np.asarray(batch.z)[first], np.asarray(batch.counts)[first]
    out = check_unique(z, c, t)
    out["smact_valid"] = out["smact_valid"] & out["supported"]
    if assign:
        out["oxidation_states"] = assign_states(t, z, c, np.flatnonzero(out["electronegativity_balanced"]))
    return {name: v[inverse.reshape(-1)] for name, v in out.items()}


def ions(elements: list[str], states: list[int]) -> str:
    """'Mg2+ Zr4+ S2-' (pymatgen's species notation, magnitude 1 omitted); '' without states."""
    if not any(states):
        return ""
    return " ".join(f"{e}{'' if abs(s) == 1 else abs(s)}{'+' if s > 0 else '-'}"
                    for e, s in zip(elements, states))
