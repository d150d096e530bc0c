"""The composition key: one place that turns a formula into a canonical composition.

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
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from .errors import MatstoreError

MAX_Z = 118
_TOL = Fraction(1, 10**8)


def _element_table() -> tuple[list[str], dict[str, int], np.ndarray]:
    from pymatgen.core.periodic_table import Element

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
_SORT_X = np.where(np.isnan(PAULING_X), np.inf, PAULING_X)
_SPECIAL = {"LiO": "Li2O2", "NaO": "Na2O2", "KO": "K2O2", "HO": "H2O2", "CsO": "Cs2O2",
            "RbO": "Rb2O2", "O": "O2", "N": "N2", "F": "F2", "Cl": "Cl2", "H": "H2"}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_HYDRATE_SPLIT = re.compile(r"\s*[·•∙*]\s*")
_LEADING_COEF = re.compile(r"^(" + _NUMBER + r")\s*(?=[A-Z(])")


class FormulaError(MatstoreError, ValueError):
    """A formula that cannot be parsed; the message names the formula and the reason."""

    def __init__(self, formula: object, reason: str):
        self.formula = formula
        self.reason = reason
        super().__init__(f"formula {formula!r}: {reason}")


@dataclass(frozen=True)
class Composition:
    """A canonical composition: the integer map in canonical order, its formula and key."""

    elements: tuple[str, ...]
    counts: tuple[int, ...]
    formula: str
    composition_id: int

    @property
    def n_elements(self) -> int:
        return len(self.elements)

    @property
    def n_atoms(self) -> int:
        return sum(self.counts)

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.elements, self.counts))


_TOKEN_RE = re.compile(r"\s*(?:([A-Z][a-z]*)|([(\[{])|([)\]}])|(" + _NUMBER + r"))")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


def _parse_part(formula: str, text: str, factor: Fraction, out: dict[str, Fraction]) -> None:
    """Recursive-descent over one hydrate part; amounts stay exact Fractions."""
    stack: list[tuple[str, dict[str, Fraction]]] = [("", {})]
    last: dict[str, Fraction] | None = None  # what a following number multiplies
    pos = 0
    text = text.replace("@", "").rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise FormulaError(formula, f"unexpected text {text[pos:].strip()!r}")
        pos = m.end()
        sym, opening, closing, number = m.groups()
        cur = stack[-1][1]
        if sym:
            if sym not in Z_OF:
                raise FormulaError(formula, f"unknown element {sym!r}")
            last = {sym: Fraction(1)}
            cur[sym] = cur.get(sym, Fraction(0)) + 1
        elif opening:
            stack.append((opening, {}))
            last = None
        elif closing:
            if len(stack) == 1 or _CLOSE[stack[-1][0]] != closing:
                raise FormulaError(formula, "unbalanced brackets")
            _, group = stack.pop()
            if not group:
                raise FormulaError(formula, "empty brackets")
            parent = stack[-1][1]
            for el, a in group.items():
                parent[el] = parent.get(el, Fraction(0)) + a
            last = group
        else:
            if last is None:
                raise FormulaError(formula, f"number {number!r} follows no element or group")
            mult = Fraction(number) - 1
            for el, a in last.items():
                stack[-1][1][el] += a * mult
            last = None
    if len(stack) != 1:
        raise FormulaError(formula, "unbalanced brackets")
    for el, a in stack[0][1].items():
        out[el] = out.get(el, Fraction(0)) + a * factor


_SIMPLE_RE = re.compile(r"(?:[A-Z][a-z]?\d*)+")
_SIMPLE_PAIR = re.compile(r"([A-Z][a-z]?)(\d*)")


def parse_amounts(formula: str) -> dict[str, Fraction]:
    """Element -> exact amount as written (not reduced). Raises FormulaError."""
    if not isinstance(formula, str):
        raise FormulaError(formula, f"expected a string, got {type(formula).__name__}")
    text = formula.strip()
    if _SIMPLE_RE.fullmatch(text):  # fast path: no brackets, integer amounts (most data)
        out_int: dict[str, int] = {}
        for sym, n in _SIMPLE_PAIR.findall(text):
            if sym not in Z_OF:
                raise FormulaError(formula, f"unknown element {sym!r}")
            out_int[sym] = out_int.get(sym, 0) + (int(n) if n else 1)
        return out_int  # ints behave as Fractions in reduce_amounts
    if not text or not re.search(r"[A-Z]", text):
        raise FormulaError(formula, "no element symbol")
    out: dict[str, Fraction] = {}
    for part in _HYDRATE_SPLIT.split(text):
        if not part:
            raise FormulaError(formula, "empty hydrate part")
        coef = Fraction(1)
        m = _LEADING_COEF.match(part)
        if m:
            coef = Fraction(m.group(1))
            part = part[m.end():]
        _parse_part(formula, part, coef, out)
    return out


def reduce_amounts(formula: str, amounts: dict[str, Fraction]) -> dict[str, int]:
    """Exact amounts -> smallest integer map with the same ratios (see module rules)."""
    if all(type(a) is int for a in amounts.values()):
        ints = {el: a for el, a in amounts.items() if a > 0}
        if not ints:
            raise FormulaError(formula, "all amounts are zero")
        g = math.gcd(*ints.values())
        return _bounded(formula, {el: n // g for el, n in ints.items()})
    cleaned: dict[str, Fraction] = {}
    for el, a in amounts.items():
        if a < 0:
            raise FormulaError(formula, f"negative amount for {el}")
        r = round(a)
        if abs(a - r) < _TOL:
            a = Fraction(r)
        if a >= _TOL:
            cleaned[el] = a
    if not cleaned:
        raise FormulaError(formula, "all amounts are zero")
    lcm = math.lcm(*(a.denominator for a in cleaned.values()))
    ints = {el: int(a * lcm) for el, a in cleaned.items()}
    g = math.gcd(*ints.values())
    return _bounded(formula, {el: n // g for el, n in ints.items()})


MAX_COUNT = 2**31 - 1  # compositions.counts is INTEGER[] in the store


def _bounded(formula: str, counts: dict[str, int]) -> dict[str, int]:
    if max(counts.values()) > MAX_COUNT:  # e.g. HHe1e400: no store column holds it
        raise FormulaError(formula, f"amounts too large: reduced counts exceed {MAX_COUNT}")
    return counts


def _sort_order(symbols) -> list[str]:
    return sorted(symbols, key=lambda s: (_SORT_X[Z_OF[s]], s))


def _fmt(n: int) -> str:
    return "" if n == 1 else str(n)


def _reduce_formula(counts: dict[str, int]) -> tuple[str, int]:
    """pymatgen.core.composition.reduce_formula for an all-integer map, without get_el_sp."""
    syms = _sort_order(counts)
    factor = math.gcd(*counts.values())
    poly = ""
    if len(syms) >= 3 and PAULING_X[Z_OF[syms[-1]]] - PAULING_X[Z_OF[syms[-2]]] < 1.65:
        pform, pfactor = _reduce_formula({s: counts[s] // factor for s in syms[-2:]})
        if pfactor != 1:
            poly = f"({pform}){pfactor}"
            syms = syms[:-2]
    return "".join(s + _fmt(counts[s] // factor) for s in syms) + poly, factor


def reduced_formula(counts: dict[str, int]) -> str:
    """pymatgen's Composition.reduced_formula for an integer element->count map."""
    formula, _ = _reduce_formula(counts)
    return _SPECIAL.get(formula, formula)


# --- the 64-bit key -------------------------------------------------------------------------
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
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
    z = np.asarray(z, dtype=np.uint64)
    counts = np.asarray(counts, dtype=np.int64)
    present = (z > 0) & (counts > 0)
    g = np.gcd.reduce(np.where(present, counts, 0), axis=1)
    g[g == 0] = 1
    reduced = (counts // g[:, None]).astype(np.uint64)
    per = _mix64((z << np.uint64(32)) | reduced)
    with np.errstate(over="ignore"):
        total = np.where(present, per, np.uint64(0)).sum(axis=1, dtype=np.uint64)
    return _mix64(total).view(np.int64)


_MASK = (1 << 64) - 1


def _mix64_int(x: int) -> int:
    """Scalar twin of _mix64 (plain ints are ~50x cheaper than 1-element numpy arrays)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def composition_key(counts: dict[str, int]) -> int:
    """Key of a reduced integer map; equals keys_from_arrays on the same composition."""
    total = sum(_mix64_int((Z_OF[s] << 32) | n) for s, n in counts.items()) & _MASK
    key = _mix64_int(total)
    return key - (1 << 64) if key >= 1 << 63 else key


@lru_cache(maxsize=1 << 20)
def parse(formula: str) -> Composition:
    """Formula -> canonical Composition (cached: repeated formulas cost a dict lookup)."""
    counts = reduce_amounts(formula, parse_amounts(formula))
    syms = _sort_order(counts)
    ordered = {s: counts[s] for s in syms}
    return Composition(tuple(syms), tuple(ordered.values()), reduced_formula(ordered),
                       composition_key(ordered))


def try_parse(formula) -> Composition | str:
    """parse(), but returns the rejection reason instead of raising."""
    try:
        return parse(formula)
    except FormulaError as e:
        return e.reason
    except TypeError:  # unhashable input to the cache
        return f"expected a string, got {type(formula).__name__}"


def from_arrays(z_row, count_row) -> Composition:
    """One decoded row (atomic numbers and counts) -> Composition."""
    counts: dict[str, int] = {}
    for zi, ci in zip(z_row, count_row):
        if zi > 0 and ci > 0:
            counts[SYMBOLS[int(zi)]] = counts.get(SYMBOLS[int(zi)], 0) + int(ci)
    g = math.gcd(*counts.values())
    counts = {s: counts[s] // g for s in _sort_order(counts)}
    return Composition(tuple(counts), tuple(counts.values()), reduced_formula(counts),
                       composition_key(counts))


@dataclass
class CompositionBatch:
    """Compositions as padded arrays, the input every featurizer and checker takes.

    z[n, k]: atomic numbers (0 = padding); counts[n, k]: reduced integer counts (0 = padding);
    composition_id[n]: keys. k is the largest element count in the batch.
    """

    composition_id: np.ndarray
    z: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.composition_id)

    @property
    def fractions(self) -> np.ndarray:
        c = self.counts.astype(np.float64)
        return c / c.sum(axis=1, keepdims=True)

    @classmethod
    def from_lists(cls, elements: list, counts: list, composition_id=None) -> "CompositionBatch":
        """From per-row element-symbol lists and count lists (e.g. the store's list columns)."""
        n = len(elements)
        k = max((len(e) for e in elements), default=1) or 1
        z = np.zeros((n, k), dtype=np.int16)
        c = np.zeros((n, k), dtype=np.int64)
        for i, (els, cs) in enumerate(zip(elements, counts)):
            z[i, : len(els)] = [Z_OF[s] for s in els]
            c[i, : len(cs)] = cs
        ids = keys_from_arrays(z, c) if composition_id is None else np.asarray(composition_id, np.int64)
        return cls(ids, z, c)

    @classmethod
    def from_compositions(cls, comps: list[Composition]) -> "CompositionBatch":
        return cls.from_lists([c.elements for c in comps], [c.counts for c in comps],
                              [c.composition_id for c in comps])

    @classmethod
    def from_formulas(cls, formulas: list[str]) -> "CompositionBatch":
        """Raises FormulaError on the first bad formula; filter with try_parse first if needed."""
        return cls.from_compositions([parse(f) for f in formulas])

    def elements(self, i: int) -> list[str]:
        return [SYMBOLS[int(zz)] for zz in self.z[i] if zz > 0]
