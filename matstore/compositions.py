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

MAX_FORMULA_CHARS = 1_000
MAX_NUMBER_CHARS = 24
MAX_EXPONENT = 12
MAX_ELEMENTS = 32
MAX_COUNT = 1_000_000
MAX_ATOMS = 1_000_000


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
            mult = _amount(formula, number) - 1
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
_SIMPLE_PAIR = re.compile(r"([A-Z][a-z]?)(\d*)")


def parse_amounts(formula: str) -> dict[str, Fraction]:
    """Element -> exact amount as written (not reduced). Raises FormulaError."""
    if not isinstance(formula, str):
        raise FormulaError(formula, f"expected a string, got {type(formula).__name__}")
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(formula[:40] + "...", f"longer than {MAX_FORMULA_CHARS} characters "
                                                 f"({len(formula):,})")
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
    z, reduced, present = _reduced_rows(z, counts)
    return _key_of(z, reduced, present)


def _reduced_rows(z, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, counts divided by each row's gcd, present mask) as uint64 arrays."""
    z = np.asarray(z, dtype=np.uint64)
    counts = np.asarray(counts, dtype=np.int64)
    present = (z > 0) & (counts > 0)
    g = np.gcd.reduce(np.where(present, counts, 0), axis=1)
    g[g == 0] = 1
    return z, (counts // g[:, None]).astype(np.uint64), present


def _key_of(z, reduced, present) -> np.ndarray:
    per = _mix64((z << np.uint64(32)) | reduced)
    with np.errstate(over="ignore"):
        total = np.where(present, per, np.uint64(0)).sum(axis=1, dtype=np.uint64)
    return _mix64(total).view(np.int64)


def _fingerprint_of(z, reduced, present) -> np.ndarray:
    with np.errstate(over="ignore"):
        per = _mix64(((reduced << np.uint64(8)) | z) ^ _FP_SALT)  # not the key's (Z << 32 | count)
        total = np.where(present, per, np.uint64(0)).sum(axis=1, dtype=np.uint64)
    return (_mix64(total ^ _FP_SALT) >> np.uint64(1)).view(np.int64)  # >= 0: -1 is free as "none"


_FP_SALT = np.uint64(0xD6E8FEB86659FD93)  # a second, independent key for exactness checks


def keys_and_fingerprints(z: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """keys_from_arrays and fingerprints in one pass (the gcd reduction is shared)."""
    rows = _reduced_rows(z, counts)
    return _key_of(*rows), _fingerprint_of(*rows)


def fingerprints(z: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A second (63-bit, non-negative) hash of the same reduced map, independent of the key (other
    salt and packing). key + fingerprint together is what the generate runner compares with the
    maps it has seen, without keeping every map in memory; see docs/security.md for the margin."""
    return _fingerprint_of(*_reduced_rows(z, counts))


# Maps with at most FP_EXACT_ELEMENTS elements and counts <= FP_EXACT_COUNT: a key + fingerprint
# match (127 bits) is as good as equal there. Forging one needs a generalized birthday search whose
# lists are element slots of at most 118 * 1024 entries (~2^17) against the 2^32 per list that
# 8 lists need for 127 bits, or a plain birthday search of 2^63 evaluations. Larger maps can be
# forged cheaply (32 lists of 2^21), so the runner compares those by formula.
FP_EXACT_ELEMENTS = 8
FP_EXACT_COUNT = 1024


def fingerprints_from_lists(elements, counts) -> np.ndarray:
    """fingerprints() of Arrow list columns (the store's elements VARCHAR[], counts INTEGER[])."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    elements = elements.combine_chunks() if isinstance(elements, pa.ChunkedArray) else elements
    counts = counts.combine_chunks() if isinstance(counts, pa.ChunkedArray) else counts
    n = len(elements)
    lens = pc.list_value_length(elements).to_numpy(zero_copy_only=False).astype(np.int64)
    k = int(lens.max()) if n else 1
    flat_el = pc.list_flatten(elements).dictionary_encode()
    z_of_dict = np.array([Z_OF.get(s, 0) for s in flat_el.dictionary.to_pylist()], np.int64)
    flat_z = z_of_dict[flat_el.indices.to_numpy(zero_copy_only=False)] if len(flat_el) else np.zeros(0, np.int64)
    flat_c = pc.list_flatten(counts).to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.repeat(np.arange(n), lens)
    pos = np.arange(len(rows)) - np.repeat(np.cumsum(lens) - lens, lens)
    z = np.zeros((n, max(k, 1)), np.int64)
    c = np.zeros((n, max(k, 1)), np.int64)
    z[rows, pos], c[rows, pos] = flat_z, flat_c
    return fingerprints(z, c)


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


# --- inserting compositions: the one place keys are checked against their maps -------------------

class KeyCollision(MatstoreError, ValueError):
    """Two different element/count maps with one composition_id (raised where no row can be
    rejected instead, e.g. a generate batch racing another writer)."""


def collisions(con, rows, table: str = "compositions"):
    """For rows (composition_id, formula, elements, counts; one per record, in order), the formula
    already holding each row's key with a DIFFERENT element/count map: first the table's row, else
    the first earlier row of the batch with that key. A polars String Series, null where the key is
    free or holds the same map. One join on the batch's distinct keys (the table's primary key)."""
    import polars as pl  # noqa: PLC0415

    df = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    df = df.select("composition_id", "formula", "elements", pl.col("counts").cast(pl.List(pl.Int64)))
    first = df.with_row_index("_i").group_by("composition_id", maintain_order=True).agg(
        pl.col("formula").first().alias("_f_formula"), pl.col("elements").first().alias("_f_el"),
        pl.col("counts").first().alias("_f_n"))
    con.register("_matstore_keys", first.select("composition_id").to_arrow())
    try:
        taken = pl.from_arrow(con.sql(
            f'SELECT t.composition_id, t.formula AS _t_formula, t.elements AS _t_el, '
            f't.counts::BIGINT[] AS _t_n FROM "{table}" t '
            f'JOIN _matstore_keys k USING (composition_id)').to_arrow_table())
    finally:
        con.unregister("_matstore_keys")
    if taken.height == 0:
        taken = pl.DataFrame(schema={"composition_id": pl.Int64, "_t_formula": pl.String,
                                     "_t_el": pl.List(pl.String), "_t_n": pl.List(pl.Int64)})
    j = df.join(first, on="composition_id", how="left").join(taken, on="composition_id", how="left")
    in_table = pl.col("_t_formula").is_not_null()
    return j.select(
        pl.when(in_table & ((pl.col("elements") != pl.col("_t_el")) | (pl.col("counts") != pl.col("_t_n"))))
        .then(pl.col("_t_formula"))
        .when(~in_table & ((pl.col("elements") != pl.col("_f_el")) | (pl.col("counts") != pl.col("_f_n"))))
        .then(pl.col("_f_formula"))
        .otherwise(pl.lit(None, pl.String)).alias("taken_by"))["taken_by"]


def insert_new(con, rows, table: str = "compositions") -> tuple[int, "object"]:
    """Insert compositions rows (all table columns) whose key is new; returns (rows inserted,
    taken_by Series as from collisions()). Rows with a non-null taken_by are NOT inserted: the
    caller rejects them with the reason f"composition key collision with {taken_by}"."""
    import polars as pl  # noqa: PLC0415

    df = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    if df.height == 0:
        return 0, pl.Series("taken_by", [], pl.String)
    taken_by = collisions(con, df, table)
    ok = df.filter(taken_by.is_null()).unique(subset="composition_id", keep="first", maintain_order=True)
    if ok.height == 0:
        return 0, taken_by
    cols = ", ".join(f'"{c}"' for c in ok.columns)
    con.register("_matstore_new_comps", ok.to_arrow())
    try:
        got = con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _matstore_new_comps s '
                          f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" t '
                          f'WHERE t.composition_id = s.composition_id)').fetchall()
    finally:
        con.unregister("_matstore_new_comps")
    return (int(got[0][0]) if got else 0), taken_by


def collision_reason(taken_by: str) -> str:
    return f"composition key collision with {taken_by}"


def insert_unseen(con, rows, table: str = "compositions") -> int:
    """Insert rows (all table columns, distinct keys) the caller found unseen in its in-memory
    key -> fingerprint map of the table (the generate runner: no join per batch). Keys another
    writer inserted meanwhile are skipped through the primary-key index; if any was skipped, those
    rows are compared exactly and a different map raises KeyCollision (the batch rolls back)."""
    import pyarrow as pa  # noqa: PLC0415

    arrow = rows if isinstance(rows, pa.Table) else rows.to_arrow()
    cols = ", ".join(f'"{c}"' for c in arrow.column_names)
    con.register("_matstore_new_comps", arrow)
    try:
        got = con.execute(f'INSERT OR IGNORE INTO "{table}" ({cols}) '
                          f"SELECT {cols} FROM _matstore_new_comps").fetchall()
    finally:
        con.unregister("_matstore_new_comps")
    n = int(got[0][0]) if got else 0
    if n < arrow.num_rows:
        taken_by = collisions(con, arrow, table)
        bad = taken_by.is_not_null()
        if bad.any():
            import polars as pl  # noqa: PLC0415

            clash = pl.from_arrow(arrow.select(["formula"])).filter(bad)["formula"][0]
            raise KeyCollision(f"{clash}: {collision_reason(taken_by.filter(bad)[0])} "
                               f"(another writer stored that key meanwhile)")
    return n
