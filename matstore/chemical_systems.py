"""Every composition of a chemical system under an oxidation-state rule, written as a run.

The rule (seed 003: Mg2+, O2-, 2 <= OS(Mn) <= 4, a bounded cell): a cell composition n_i is
kept when its elements can take mean oxidation states inside their ranges [lo_i, hi_i] that sum
to zero, i.e. sum n_i lo_i <= 0 <= sum n_i hi_i (mixed valence allowed: Mn3O4 is Mn 2.67+),
with 1 <= n_i <= max_counts[i] (0 allowed where all_elements is off) and sum n_i <= max_atoms.
Cell compositions with the same ratios are one composition (the store's key is the reduced map);
``enumerate_system`` returns both the cell compositions and the distinct reduced ones.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from .errors import MatstoreError
from .option_checks import at_least_one, chemical_system

MAX_CELLS = 5_000_000   # cell compositions visited at most (bounded before the loop starts)


class EnumerationError(MatstoreError, ValueError):
    """A rule that cannot be enumerated; the message names the option and why."""


@dataclass
class Enumeration:
    elements: list[str]
    cells: np.ndarray          # int64 (m, k): every kept cell composition, counts per element
    reduced: np.ndarray        # int64 (r, k): the distinct reduced ones, sorted
    rule: dict                 # the parameters, as recorded in the run

    def formulas(self) -> list[str]:
        from .compositions import from_arrays  # noqa: PLC0415
        from .compositions.elements import Z_OF  # noqa: PLC0415

        z = np.array([Z_OF[s] for s in self.elements])
        return [from_arrays(z, row).formula for row in self.reduced]


def parse_oxidation(spec, elements: list[str]) -> dict[str, tuple[float, float]]:
    """'Mg=2,Mn=2:4,O=-2' (or a dict) -> {element: (lo, hi)}; elements not named get the range of
    pymatgen's common oxidation states."""
    from pymatgen.core import Element  # noqa: PLC0415

    given: dict = {}
    if isinstance(spec, dict):
        given = dict(spec)
    elif spec:
        for part in str(spec).split(","):
            sym, sep, val = part.partition("=")
            if not sep:
                raise EnumerationError(f"oxidation states {spec!r}: expected EL=N or EL=LO:HI, got {part!r}")
            lo, _, hi = val.partition(":")
            try:
                given[sym.strip()] = (float(lo), float(hi or lo))
            except ValueError:
                raise EnumerationError(f"oxidation states {spec!r}: {part!r} is not a number or range") from None
    out = {}
    for s in elements:
        if s in given:
            lo, hi = (given[s], given[s]) if isinstance(given[s], (int, float)) else given[s]
        else:
            common = Element(s).common_oxidation_states
            if not common:
                raise EnumerationError(f"oxidation states: {s} has no common oxidation state; give {s}=LO:HI")
            lo, hi = min(common), max(common)
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi and abs(lo) <= 8 and abs(hi) <= 8):
            raise EnumerationError(f"oxidation states of {s}: range {lo}..{hi} must be finite, "
                                   f"ordered and within -8..8")
        out[s] = (lo, hi)
    extra = set(given) - set(elements)
    if extra:
        raise EnumerationError(f"oxidation states name {sorted(extra)}, outside the system {elements}")
    return out


def enumerate_system(elements, oxidation=None, max_atoms: int = 28, max_counts=None,
                     all_elements: bool = True) -> Enumeration:
    """The compositions of a chemical system under the oxidation-state rule (module docstring).
    max_counts: {element: n} (e.g. the CCCGAN image's 8 Mg, 8 Mn, 12 O); default max_atoms."""
    syms = chemical_system(elements, error=EnumerationError)
    if syms is None:
        raise EnumerationError("enumerate: needs a chemical system (--elements A,B,C)")
    max_atoms = at_least_one("enumerate: max atoms per cell", max_atoms, error=EnumerationError)
    ox = parse_oxidation(oxidation, syms)
    caps = dict(max_counts or {})
    if set(caps) - set(syms):
        raise EnumerationError(f"max counts name {sorted(set(caps) - set(syms))}, outside the system {syms}")
    top = [min(max_atoms, at_least_one(f"max count of {s}", caps.get(s, max_atoms), error=EnumerationError))
           for s in syms]
    first = 1 if all_elements else 0
    visits = math.prod(t - first + 1 for t in top)
    if visits > MAX_CELLS:
        raise EnumerationError(f"enumerate: {visits:,} cell compositions to visit (limit {MAX_CELLS:,}); "
                               f"lower --max-atoms or --max-counts")
    lo = np.array([ox[s][0] for s in syms])
    hi = np.array([ox[s][1] for s in syms])
    grid = np.array(list(itertools.product(*(range(first, t + 1) for t in top))), np.int64).reshape(-1, len(syms))
    total = grid.sum(1)
    keep = (total >= 1) & (total <= max_atoms) & (grid @ lo <= 1e-9) & (grid @ hi >= -1e-9)
    cells = grid[keep]
    g = np.gcd.reduce(cells, axis=1)[:, None] if len(cells) else np.ones((0, 1), np.int64)
    reduced = np.unique(cells // np.maximum(g, 1), axis=0) if len(cells) else cells
    rule = {"elements": syms, "oxidation_states": {s: list(ox[s]) for s in syms},
            "max_atoms": max_atoms, "max_counts": dict(zip(syms, top)), "all_elements": bool(all_elements),
            "rule": "sum n_i*lo_i <= 0 <= sum n_i*hi_i (mean oxidation states in range, charge neutral)"}
    return Enumeration(syms, cells, reduced, rule)


def write_run(store, result: Enumeration) -> tuple[int, int]:
    """The reduced compositions as one batch of an 'enumerate' run (runs, generated, new
    compositions, run_batches): the set can be queried, joined and compared like a generator's.
    Returns (run_id, new compositions)."""
    from .compositions import composition_rows  # noqa: PLC0415
    from .compositions.elements import Z_OF  # noqa: PLC0415
    from .runner import write_batch  # noqa: PLC0415
    from .runs import open_run, tracked  # noqa: PLC0415
    from .samples import decode_rows, key_check, known_keys  # noqa: PLC0415

    t0 = time.perf_counter()
    z = np.tile(np.array([Z_OF[s] for s in result.elements], np.int64), (len(result.reduced), 1))
    counts = result.reduced.astype(np.int64)
    present = counts > 0
    z = np.where(present, z, 0)
    params = {**result.rule, "n_cells": int(len(result.cells)), "n_reduced": int(len(result.reduced))}
    run_id = open_run(store, "enumerate", None, params, None, len(result.reduced))
    with tracked(store, run_id):
        batch = decode_rows(z, counts, 0, 0)
        known, by_formula = known_keys(store)
        batch, _, _, first, new = key_check(batch, known, by_formula)
        new_rows = composition_rows(batch.z[first[new]], batch.counts[first[new]])
        with store.transaction() as con:
            n_new = write_batch(con, run_id, batch, new_rows, time.perf_counter() - t0)
    return run_id, n_new
