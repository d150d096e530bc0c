"""The composition key: one place that turns a formula into a canonical composition.

Modules: elements (the periodic table), parse (formula grammar, bounds, reduced formula), column (a
whole column of formula strings at once, parse()'s answers), keys
(the 64-bit key and fingerprint), kernels (the same over arrays), batch (CompositionBatch),
insert (key-checked inserts into the compositions table).

Rules (decided once, here):
- Parsing follows pymatgen's ``Composition`` grammar: element symbols with optional amounts,
  nested ``()``/``[]``/``{}`` groups with multipliers, ``@`` ignored (metallofullerenes), plus
  hydrate separators ``·``/``•``/``*`` with an optional leading coefficient (CuSO4·5H2O).
- Amounts are exact decimals (``Fraction("0.333")``); an amount within 1e-8 of an integer is that
  integer and an amount below 1e-8 is dropped (pymatgen's ``amount_tolerance``).
- The canonical map is the smallest all-integer element->count map with the same ratios:
  Li0.5CoO2 -> {Li: 1, Co: 2, O: 4}. Fe2O3, Fe4O6 and O3Fe2 are one composition.
- ``formula`` is pymatgen's ``reduced_formula`` of that integer map (electronegativity order,
  polyanion grouping, O2/H2O2-style special cases).
- ``composition_id`` is a signed 64-bit hash of the set of (Z, count) pairs, computed with uint64
  array arithmetic so millions of generated samples can be keyed without a Python loop.
- Keys are not trusted to be unique: a sum of per-element hashes can be forged (a generalized
  birthday search finds a formula with Fe2O3's key in seconds). Every insert into ``compositions``
  goes through ``insert_new``, which compares the element/count map of each row whose key is
  already taken (in the table or earlier in the same batch) and returns it as a collision for the
  caller to reject ("composition key collision with Fe2O3"); a key never names two maps.

Bounds (untrusted input; a formula beyond any of them is a FormulaError naming the bound):
- ``MAX_FORMULA_CHARS`` = 1,000 characters of formula text;
- ``MAX_NUMBER_CHARS`` = 24 characters per amount and ``MAX_EXPONENT`` = 12 for ``1e-3``-style
  amounts, checked before any number is converted (``H1e10000000`` would take seconds);
- ``MAX_ELEMENTS`` = 32 distinct elements (real compounds have at most ~10; MatGAN uses 8);
- ``MAX_COUNT`` = 10^6 per element and ``MAX_ATOMS`` = 10^6 atoms in the reduced formula: real
  data needs at most a few hundred (OQMD/MP <= 291), 6-decimal doping (Fe0.999999Co0.000001)
  needs 10^6; counts stay far from the store's INTEGER columns, and validity's exact bitsets
  (a bit per reachable charge) stay below a few MB per composition.
"""

from __future__ import annotations

from .batch import CompositionBatch
from .column import FormulaColumn, parse_formulas
from .elements import MAX_Z, PAULING_X, SORT_X, SPECIAL_FORMULAS, SYMBOLS, Z_OF, sort_order
from .insert import KeyCollision, collision_reason, collisions, insert_new, insert_unseen
from .kernels import canonical, composition_rows
from .keys import (FP_EXACT_COUNT, FP_EXACT_ELEMENTS, composition_key, fingerprints,
                   fingerprints_from_lists, keys_and_fingerprints, keys_from_arrays, mix64, mix64_int)
from .parse import (MAX_ATOMS, MAX_COUNT, MAX_ELEMENTS, MAX_EXPONENT, MAX_FORMULA_CHARS,
                    MAX_NUMBER_CHARS, Composition, FormulaError, from_arrays, parse, parse_amounts,
                    reduce_amounts, reduced_formula, try_parse)


__all__ = ["CompositionBatch", "Composition", "FormulaError", "KeyCollision", "MAX_ATOMS", "MAX_COUNT",
           "MAX_ELEMENTS", "MAX_EXPONENT", "MAX_FORMULA_CHARS", "MAX_NUMBER_CHARS", "MAX_Z",
           "FP_EXACT_COUNT", "FP_EXACT_ELEMENTS", "PAULING_X", "SORT_X", "SPECIAL_FORMULAS", "SYMBOLS",
           "Z_OF", "canonical", "collision_reason", "collisions", "composition_key", "composition_rows",
           "fingerprints", "fingerprints_from_lists", "FormulaColumn", "from_arrays", "insert_new", "insert_unseen",
           "keys_and_fingerprints", "keys_from_arrays", "mix64", "mix64_int", "parse", "parse_amounts", "parse_formulas",
           "reduce_amounts", "reduced_formula", "sort_order", "try_parse"]
