"""Formula text -> canonical Composition: pymatgen's grammar, exact amounts, the bounds on
untrusted input and pymatgen's reduced formula (rules in the package docstring)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from ..errors import MatstoreError
from .elements import PAULING_X, SPECIAL_FORMULAS, SYMBOLS, Z_OF, sort_order
from .keys import composition_key

_TOL = Fraction(1, 10**8)

MAX_FORMULA_CHARS = 1_000
MAX_NUMBER_CHARS = 24
MAX_EXPONENT = 12
MAX_ELEMENTS = 32
MAX_COUNT = 1_000_000
MAX_ATOMS = 1_000_000

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
            amount = _amount(formula, number)
            if amount == 0:   # Fe0O3 is not O, Fe(O3)0 is not Fe
                raise FormulaError(formula, f"zero amount {number!r}")
            mult = amount - 1
            for el, a in last.items():
                stack[-1][1][el] += a * mult
            last = None
    if len(stack) != 1:
        raise FormulaError(formula, "unbalanced brackets")
    for el, a in stack[0][1].items():
        out[el] = out.get(el, Fraction(0)) + a * factor


def _amount(formula: str, number: str) -> Fraction:
    """An amount as written, refused before conversion when absurd (1e10000000 takes seconds)."""
    if len(number) > MAX_NUMBER_CHARS:
        raise FormulaError(formula, f"amount {number[:30]!r}... longer than {MAX_NUMBER_CHARS} characters")
    mant, e, exp = number.lower().partition("e")
    if e and abs(int(exp)) > MAX_EXPONENT:
        raise FormulaError(formula, f"amount {number!r}: exponent beyond ±{MAX_EXPONENT}")
    return Fraction(number)


_SIMPLE_RE = re.compile(r"(?:[A-Z][a-z]?\d*)+")
_FOREIGN = re.compile(r"[^\x20-\x7e·•∙]")
_DOT_HYDRATE = re.compile(r"\d\.\d+\s*[HD]2O(?![a-z])")
_SIMPLE_PAIR = re.compile(r"([A-Z][a-z]?)(\d*)")


def parse_amounts(formula: str) -> dict[str, Fraction]:
    """Element -> exact amount as written (not reduced). Raises FormulaError."""
    if not isinstance(formula, str):
        raise FormulaError(formula, f"expected a string, got {type(formula).__name__}")
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(formula[:40] + "...", f"longer than {MAX_FORMULA_CHARS} characters "
                                                 f"({len(formula):,})")
    text = formula.strip()
    odd = _FOREIGN.search(text)
    if odd:   # `H٣`: \d and int() read Arabic-Indic digits; only ASCII and the hydrate dots
        raise FormulaError(formula, f"character {odd.group()!r} (U+{ord(odd.group()):04X}) is not "
                                    f"ASCII; write amounts with the digits 0-9")
    if _DOT_HYDRATE.search(text):   # CuSO4.5H2O read as O4.5 gave Cu2H4S2O11
        raise FormulaError(formula, "'.' before a water count is ambiguous (decimal point or "
                                    "hydrate dot); write CuSO4·5H2O, CuSO4*5H2O or CuSO4(H2O)5")
    if _SIMPLE_RE.fullmatch(text):  # fast path: no brackets, integer amounts (most data)
        out_int: dict[str, int] = {}
        for sym, n in _SIMPLE_PAIR.findall(text):
            if sym not in Z_OF:
                raise FormulaError(formula, f"unknown element {sym!r}")
            out_int[sym] = out_int.get(sym, 0) + (int(n) if n else 1)
        zero = [sym for sym, n in _SIMPLE_PAIR.findall(text) if n and int(n) == 0]
        if zero and len(zero) < len(out_int):   # Fe0O3 is not O (all zero: reduce_amounts says so)
            raise FormulaError(formula, f"zero amount for {zero[0]}")
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
            coef = _amount(formula, m.group(1))
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


def _bounded(formula: str, counts: dict[str, int]) -> dict[str, int]:
    """The reduced map within the module's bounds (see the docstring), else a FormulaError."""
    if len(counts) > MAX_ELEMENTS:
        raise FormulaError(formula, f"{len(counts)} elements: more than {MAX_ELEMENTS}")
    el, top = max(counts.items(), key=lambda kv: kv[1])
    if top > MAX_COUNT:  # e.g. Fe2147483647O2147483646 (its n_atoms overflowed INTEGER)
        raise FormulaError(formula, f"count of {el} in the reduced formula ({top:,}) exceeds {MAX_COUNT:,}")
    total = sum(counts.values())
    if total > MAX_ATOMS:
        raise FormulaError(formula, f"{total:,} atoms in the reduced formula: more than {MAX_ATOMS:,}")
    return counts


def _fmt(n: int) -> str:
    return "" if n == 1 else str(n)


def _reduce_formula(counts: dict[str, int]) -> tuple[str, int]:
    """pymatgen.core.composition.reduce_formula for an all-integer map, without get_el_sp."""
    syms = sort_order(counts)
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
    return SPECIAL_FORMULAS.get(formula, formula)



@lru_cache(maxsize=1 << 20)
def parse(formula: str) -> Composition:
    """Formula -> canonical Composition (cached: repeated formulas cost a dict lookup)."""
    counts = reduce_amounts(formula, parse_amounts(formula))
    syms = sort_order(counts)
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
    counts = {s: counts[s] // g for s in sort_order(counts)}
    return Composition(tuple(counts), tuple(counts.values()), reduced_formula(counts),
                       composition_key(counts))

