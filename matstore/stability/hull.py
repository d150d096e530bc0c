"""The lower convex hull of known phases, one per chemical system, evaluated at array speed.

Semantics are pymatgen's PhaseDiagram (`_compute`, `get_decomp_and_e_above_hull(allow_negative=
True)`): a system of k elements has the points (atom fractions, energy per atom) of its phases'
ground states, the elements at min(0, their own entries) eV/atom, and only compounds below the
elements' tie plane (formation energy < -1e-11); a composition's hull energy is the lowest energy
of a mix of those points with its composition, its decomposition that mix (amounts > 1e-8).

Two ways to the same answer (tests check both against pymatgen on real OQMD energies):
- "simplex" (default): that lowest mix is a linear program per candidate (min sum l_i E_i with
  sum l_i x_i = x, l >= 0). All candidates are solved at once with a batched revised simplex
  method starting from the elements, a handful of pivots each, over their systems' points padded
  into arrays; the systems' points are found by looking every element subset up among packed
  element-set keys, so there is no Python loop per system and no hull to build.
- "qhull": pymatgen's own construction per system (scipy ConvexHull with "Qt i" and an extra
  point above everything; facets holding it or vertical dropped; a composition takes the first
  facet whose barycentric coordinates are all >= -1e-9), built once per system and cached. Used
  for systems of more than 9 elements and for any candidate the simplex does not settle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .. import compositions
from . import qhull, simplex
from .qhull import SystemHull
from .systems import (FORMATION_TOL, IN_SIMPLEX_TOL, N_EL, NUMERICAL_TOL, ORDER, PACK_MAX, PAD,  # noqa: F401
                      RANK, Z_OF_RANK, pack, padded_ranks)

__all__ = ["FORMATION_TOL", "IN_SIMPLEX_TOL", "N_EL", "NUMERICAL_TOL", "RANK", "Z_OF_RANK", "HullResult", "Hulls"]


@dataclass
class HullResult:
    """Per candidate (input order): hull energy, energy above it (NaN where the energy is), and the
    decomposition as CSR lists: products of row i are product[offsets[i]:offsets[i+1]]."""

    hull_energy: np.ndarray
    e_above_hull: np.ndarray
    offsets: np.ndarray           # int64 (m + 1)
    product: np.ndarray           # int64 index into Hulls.product_ids / product_formulas
    fraction: np.ndarray          # atom fraction of each product

    def decomposition(self, hulls: "Hulls") -> pa.ListArray:
        """list<struct<composition_id, formula, fraction>> column (the stability table's)."""
        structs = pa.StructArray.from_arrays(
            [pa.array(hulls.product_ids[self.product]),
             hulls.formulas_arrow.take(pa.array(self.product)),
             pa.array(self.fraction)], ["composition_id", "formula", "fraction"])
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), structs)


class Hulls:
    """The known phases of one reference (ground state per composition, elements at 0 eV/atom
    unless an entry is lower) and their hulls per chemical system, built on first use and cached."""

    def __init__(self, composition_id, z, counts, energy, formula):
        ids = np.asarray(composition_id, np.int64)
        energy = np.asarray(energy, np.float64)
        ok = np.isfinite(energy)
        ids, energy = ids[ok], energy[ok]
        formula = np.asarray(formula, object)[ok]
        ranks, frac = padded_ranks(np.asarray(z)[ok], np.asarray(counts)[ok])
        # ground state per composition: lowest energy first, then the first row of each id
        order = np.lexsort((energy, ids))
        first = np.ones(len(order), bool)
        first[1:] = ids[order][1:] != ids[order][:-1]
        g = order[first]
        self.phase_ids, self.phase_energy = ids[g], energy[g]
        self.phase_ranks, self.phase_frac = ranks[g], frac[g]
        n = len(g)
        nel = (self.phase_ranks < PAD).sum(axis=1)
        # element references: min(0, lowest entry of the pure element)
        self.el_energy = np.zeros(N_EL)
        unary = np.flatnonzero(nel == 1)
        np.minimum.at(self.el_energy, self.phase_ranks[unary, 0], self.phase_energy[unary])
        ref = np.where(self.phase_ranks < PAD, self.el_energy[np.minimum(self.phase_ranks, N_EL - 1)], 0)
        self.phase_form = self.phase_energy - (ref * self.phase_frac).sum(axis=1)
        # products: the phases, then one per element (its entry's composition where it has one)
        el = [compositions.parse(s) for s in ORDER]
        self.product_ids = np.concatenate([self.phase_ids, [c.composition_id for c in el]]).astype(np.int64)
        self.product_formulas = np.concatenate([formula[g], [c.formula for c in el]]).astype(object)
        # compounds that can be hull vertices, grouped by their element set
        cand = np.flatnonzero((nel >= 2) & (self.phase_form < -FORMATION_TOL))
        self._hull_compounds = cand
        self._groups: dict[tuple, np.ndarray] | None = None
        # the same as sorted packed keys (CSR) for the vectorised lookup: group g's compounds are
        # group_members[group_offsets[g]:group_offsets[g + 1]]
        pk = pack(self.phase_ranks[cand], nel[cand])
        order = np.argsort(pk, kind="stable")
        self.group_keys, start = np.unique(pk[order], return_index=True)
        self.group_offsets = np.append(start, len(order)).astype(np.int64)
        self.group_members = cand[order]
        self._n = n
        self._cache: dict[tuple, SystemHull] = {}
        self._formulas_arrow: pa.Array | None = None

    @property
    def n_phases(self) -> int:
        return self._n

    @property
    def formulas_arrow(self) -> pa.Array:
        """product_formulas as an Arrow string array (built once, on first use)."""
        if self._formulas_arrow is None:
            self._formulas_arrow = pa.array(self.product_formulas, pa.string())
        return self._formulas_arrow

    @property
    def groups(self) -> dict[tuple, np.ndarray]:
        """element-set ranks -> the hull-candidate compounds of exactly that set (qhull path)."""
        if self._groups is None:
            self._groups = {}
            cand = self._hull_compounds
            if len(cand):
                keys, inv = np.unique(self.phase_ranks[cand], axis=0, return_inverse=True)
                inv = inv.reshape(-1)
                srt = np.argsort(inv, kind="stable")
                bounds = np.concatenate([[0], np.cumsum(np.bincount(inv, minlength=len(keys)))])
                for j, key in enumerate(keys):
                    self._groups[tuple(int(v) for v in key if v < PAD)] = cand[srt[bounds[j]:bounds[j + 1]]]
        return self._groups

    # --- one chemical system -------------------------------------------------------------------
    def system(self, ranks: tuple) -> SystemHull:
        h = self._cache.get(ranks)
        if h is None:
            h = self._cache[ranks] = qhull.build(self, ranks)
        return h

    def compounds(self, ranks: tuple) -> np.ndarray:
        k = len(ranks)
        if k > 12:   # fewer groups than subsets: test each group
            s = set(ranks)
            parts = [v for key, v in self.groups.items() if set(key) <= s]
        else:
            parts = [self.groups[sub] for n in range(2, k + 1)
                     for sub in itertools.combinations(ranks, n) if sub in self.groups]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    # --- candidates ------------------------------------------------------------------------------
    def evaluate(self, z, counts, energy, method: str = "simplex") -> HullResult:
        """Hull energy, energy above hull and decomposition of compositions (padded z/counts rows)
        with their energies per atom (NaN allowed: the decomposition is still given).

        method "simplex": the hull energy as the linear program min sum(l_i E_i) over the system's
        points with sum(l_i x_i) = x, l >= 0, solved for all candidates at once (batched simplex
        pivots from the elements; no hull is built); "qhull": the hull facets of each system, as
        pymatgen builds them. Same answers; a candidate the simplex does not settle goes to qhull."""
        energy = np.asarray(energy, np.float64)
        m = len(energy)
        ranks, frac = padded_ranks(z, counts)
        hull = np.full(m, np.nan)
        parts_row, parts_prod, parts_frac = [], [], []
        if method not in ("simplex", "qhull"):
            raise ValueError(f"method must be 'simplex' or 'qhull', not {method!r}")
        nel = (ranks < PAD).sum(axis=1)
        todo = np.flatnonzero(nel >= 1)
        if method == "simplex" and len(todo):
            fast = todo[nel[todo] <= PACK_MAX]
            todo = np.concatenate([todo[nel[todo] > PACK_MAX],
                                   simplex.candidates(self, fast, ranks, nel, frac, hull, parts_row,
                                                     parts_prod, parts_frac)])
        if len(todo):   # qhull: one hull per system, built once and cached
            keys, inv = np.unique(ranks[todo], axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            srt = np.argsort(inv, kind="stable")
            cut = np.flatnonzero(np.diff(inv[srt])) + 1
            for sel in np.split(srt, cut):
                sysr = tuple(int(v) for v in keys[inv[sel[0]]] if v < PAD)
                rows = todo[sel]
                r, p, f, e = qhull.place(self.system(sysr), frac[rows, :len(sysr)])
                hull[rows] = e
                parts_row.append(rows[r])
                parts_prod.append(p)
                parts_frac.append(f)
        row = np.concatenate(parts_row) if parts_row else np.zeros(0, np.int64)
        prod = np.concatenate(parts_prod) if parts_prod else np.zeros(0, np.int64)
        fr = np.concatenate(parts_frac) if parts_frac else np.zeros(0)
        order = np.lexsort((-fr, row))      # by candidate, largest fraction first
        row, prod, fr = row[order], prod[order], fr[order]
        offsets = np.zeros(m + 1, np.int64)
        np.cumsum(np.bincount(row, minlength=m), out=offsets[1:])
        above = energy - hull
        above[np.abs(above) < IN_SIMPLEX_TOL] = 0.0   # on the hull, not a rounding error off it
        return HullResult(hull, above, offsets, prod, fr)
