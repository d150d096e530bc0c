"""Formula strings parsed a column at a time. The plain spellings almost all data uses (symbols
with integer amounts, e.g. Li2KAgDySF5: every OQMD and MP formula, and un-nested round-bracket
groups with integer multipliers, e.g. Li(CoO2)2: the reduced formulas matstore writes) are
tokenised by polars' regex engine and reduced, ordered, keyed and written by the array kernels
(kernels.py); every other string (other brackets, nesting, decimals, hydrates, spaces,
non-ASCII, unknown symbols, zero or repeated elements, anything near a bound) goes through
parse() one at a time. Answers and refusals are
therefore parse()'s (tests/test_formula_column.py checks every formula of the real data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from .elements import Z_OF
from .kernels import canonical, composition_rows
from .parse import MAX_ATOMS, MAX_ELEMENTS, Composition, try_parse

# ASCII symbols, amounts of at most 6 digits (below MAX_COUNT), no sign, dot or space, and
# un-nested () groups: strings parse() reads as the sum of their tokens times their group's amount
_AMOUNT = r"[0-9]{0,6}"
_ELEMENT = r"[A-Z][a-z]?" + _AMOUNT
_PLAIN = rf"^(?:{_ELEMENT}|\((?:{_ELEMENT})+\){_AMOUNT})+$"
_PIECE = r"\([^()]*\)[0-9]*|[A-Z][a-z]?[0-9]*"
_TOKEN = r"[A-Z][a-z]?[0-9]*"


@dataclass
class FormulaColumn:
    """Parsed formulas, one row per input string, in input order.

    ok[n]: parsed; z[n, k] atomic numbers and counts[n, k] reduced counts in formula order (0 =
    padding; all 0 where not ok); reason[i]: parse()'s refusal for row i (None where ok)."""

    ok: np.ndarray
    z: np.ndarray
    counts: np.ndarray
    reason: list

    def rows(self) -> pa.Table:
        """compositions-table rows of the parsed rows (composition_id, formula, elements, counts,
        n_elements, n_atoms), as parse() would give them."""
        return composition_rows(self.z[self.ok], self.counts[self.ok])


def _plain_tokens(s: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain formulas -> (row of each token, its Z, its amount times its group's); Z 0 for an
    unknown symbol. Tokens of a row are consecutive, in written order."""
    if s.str.contains("(", literal=True).any():
        pieces = s.str.extract_all(_PIECE)
        piece_row = np.repeat(np.arange(len(s)), pieces.list.len().to_numpy())
        pieces = pieces.explode()
        group = pieces.str.starts_with("(")
        mult = pieces.str.extract(r"\)([0-9]+)$", 1).cast(pl.Int64).fill_null(1).to_numpy()
        inner = pl.select(pl.when(group).then(pieces.str.extract(r"^\(([^)]*)\)", 1))
                          .otherwise(pieces)).to_series()
    else:   # no groups (OQMD, MP): each formula is one piece
        piece_row, mult, inner = np.arange(len(s)), np.ones(len(s), np.int64), s
    tok = inner.str.extract_all(_TOKEN)
    lens = tok.list.len().to_numpy()
    flat = tok.explode()
    sym = flat.str.extract(r"^([A-Z][a-z]?)", 1)
    z = sym.replace_strict(Z_OF, default=0, return_dtype=pl.Int64).to_numpy()
    amount = flat.str.slice(sym.str.len_bytes()).cast(pl.Int64, strict=False).fill_null(1).to_numpy()
    return np.repeat(piece_row, lens), z, amount * np.repeat(mult, lens)


def parse_formulas(formulas) -> FormulaColumn:
    """Formula strings (a list or polars Series; other values are refused as parse() refuses
    them) -> FormulaColumn."""
    values = formulas.to_list() if isinstance(formulas, pl.Series) else list(formulas)
    n = len(values)
    try:
        s = pl.Series("f", values, dtype=pl.String, strict=True)
    except (TypeError, pl.exceptions.PolarsError):   # non-strings: parse() names their type
        s = pl.Series("f", [v if type(v) is str else None for v in values], dtype=pl.String)
    plain = np.flatnonzero(s.str.contains(_PLAIN).fill_null(False).to_numpy())
    rows, zf, af = _plain_tokens(s.gather(plain))
    lens = np.bincount(rows, minlength=len(plain))
    k = max(int(lens.max()) if len(lens) else 1, 1)
    cols = np.arange(len(zf)) - np.repeat(np.cumsum(lens) - lens, lens)
    zp = np.zeros((len(plain), k), np.int64)
    cp = np.zeros((len(plain), k), np.int64)
    zp[rows, cols], cp[rows, cols] = zf, af
    zs = np.sort(zp, axis=1)
    # the scalar path decides these (unknown symbol, zero amount, a symbol twice, bounds)
    odd = ((zp == 0) & (cp > 0)).any(axis=1) | ((cp == 0) & (zp > 0)).any(axis=1)
    odd |= ((zs[:, 1:] == zs[:, :-1]) & (zs[:, 1:] > 0)).any(axis=1) | (lens > MAX_ELEMENTS)
    zc, cc, _ = canonical(zp, cp)
    odd |= cc.sum(axis=1) > MAX_ATOMS
    fast = np.zeros(n, bool)
    fast[plain[~odd]] = True
    slow = np.flatnonzero(~fast)
    comps = [try_parse(values[i]) for i in slow]
    k = max([k] + [len(c.elements) for c in comps if isinstance(c, Composition)])
    z = np.zeros((n, k), np.int64)
    c = np.zeros((n, k), np.int64)
    z[plain[~odd], :zc.shape[1]] = zc[~odd]
    c[plain[~odd], :cc.shape[1]] = cc[~odd]
    ok = fast.copy()
    reason: list = [None] * n
    for i, comp in zip(slow, comps):
        if isinstance(comp, Composition):
            ok[i] = True
            z[i, :len(comp.elements)] = [Z_OF[e] for e in comp.elements]
            c[i, :len(comp.counts)] = comp.counts
        else:
            reason[i] = comp
    width = max(int((c > 0).sum(axis=1).max()) if n else 1, 1)
    return FormulaColumn(ok, z[:, :width], c[:, :width], reason)
