"""Template-based structure prediction (seed 001's right-hand side): for a composition, known
structures of the same stoichiometry pattern, ranked by Element Mover's Distance, with the target's
elements substituted site by site and the volume rescaled.

- Candidates: known structures whose reduced composition has the target's anonymous formula (the
  sorted element counts: ABC3 hosts any ABC3), ranked by ElMD (mod-Pettifor scale, the ElMD
  package's default) to the target, ties by structure_id. `elmd_many` computes ElMD for many
  templates at once: on the 1-D mod-Pettifor scale the earth mover's distance is the L1 distance
  between cumulative distributions, which is what ElMD's own `simple_emd` computes; a test proves
  the two equal.
- Substitution: template elements are replaced by target elements of the same count (a one-to-one
  map); rules for which of several equal-count elements takes which site:
  `sites` (default): site preferences learned from the library itself — for each prototype and
  Wyckoff orbit (orbits sharing a letter told apart by coordination), how often each element
  occupies it among the known structures, plus a back-off: how often it has that coordination in
  any template; the map with the highest summed log-frequency (add-half smoothing) wins, ties by
  `petti`;
  `petti`: the smallest total |mod-Pettifor difference| between each template element and the
  element that replaces it (chemically similar elements take each other's sites);
  `en`: equal-count groups matched in order of Pauling electronegativity.
  All three are measured side by side by benchmarks/csp.py.
- Volume (`coordination`, default): volumes per (element, coordination of its site) fitted by
  ridge least squares to the library's own known structures (V = sum over sites, shrunk towards
  the element's volume from the `fitted` fit), so a cation on a 12-fold site is larger than on a
  6-fold one; `fitted`: per-element volumes (shrunk towards the median volume per atom); the
  template's volume is scaled by the ratio of the two sums; a template with an element the fit
  has no volume for keeps its volume. `template`: no rescale.
- Each template gives its best and its second-best substitution (MAPS_PER_TEMPLATE), in template
  order; K predictions are the first K distinct ones (fingerprint). Space group and prototype are the template's (a
  one-to-one change of elements and a uniform scale keep every symmetry operation).
- No template of the pattern: a pyxtal random structure of a space group compatible with the
  counts, seeded by the composition and rank (method `pyxtal-random`, flagged as a fallback).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .symmetry import DEFAULT_SYMPREC, Symmetry, analyse_cell, relabelled

RULES = ("sites", "petti", "en")
VOLUMES = ("fitted", "coordination", "template")
FALLBACK_SPACEGROUPS = (225, 221, 194, 166, 139, 62, 14, 12, 2, 1)
# each template gives its best substitution, then its second best (where equal-count elements can
# swap sites, e.g. the A and B cations of a perovskite: the commonest miss at one prediction)
MAPS_PER_TEMPLATE = 2


@dataclass
class Template:
    structure_id: int
    structure: object                 # pymatgen Structure (ordered)
    counts: dict[str, int]            # reduced element -> count
    _cell: tuple | None = field(default=None, repr=False)
    _orbits: dict | None = field(default=None, repr=False)
    _env: dict | None = field(default=None, repr=False)

    def symmetry(self, symprec: float = DEFAULT_SYMPREC):
        if self._cell is None:
            self._cell = analyse_cell(self.structure, symprec)
        return self._cell

    def environment(self) -> dict[str, tuple[int, float]]:
        """element -> (coordination, shortest distance / (V/N)^(1/3)): see coordination()."""
        if self._env is None:
            self._env = coordination(self.structure)
        return self._env


@dataclass
class Prediction:
    structure: object
    symmetry: Symmetry
    method: str                       # template-substitution | pyxtal-random
    template_id: int | None
    details: dict


def reduced_counts(composition) -> dict[str, int]:
    from pymatgen.core import Composition  # noqa: PLC0415

    c = Composition(composition) if not hasattr(composition, "reduced_composition") else composition
    return {str(el): int(round(n)) for el, n in c.reduced_composition.items()}


def pattern(counts: dict[str, int]) -> tuple[int, ...]:
    return tuple(sorted(counts.values()))


class ElmdScale:
    """ElMD's mod-Pettifor feature vectors (the package's own lookup and normalisation)."""

    def __init__(self):
        import warnings  # noqa: PLC0415

        with warnings.catch_warnings():   # ElMD imports pkg_resources, which warns on import
            warnings.simplefilter("ignore")
            from ElMD import ElMD  # noqa: PLC0415

        self._elmd = ElMD
        self.lookup = ElMD("H").petti_lookup
        self.size = len(ElMD("H").feature_vector)

    def vector(self, counts: dict[str, int]) -> np.ndarray:
        v = np.zeros(self.size)
        total = sum(counts.values())
        for el, n in counts.items():
            v[self.lookup[el]] += n / total
        return v

    def position(self, el: str) -> int:
        return int(self.lookup[el])


def elmd_many(target: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """ElMD (mod_petti) of one feature vector to each row of a matrix: sum |cumsum(a - b)|."""
    return np.abs(np.cumsum(templates - target[None, :], axis=1)).sum(axis=1)


def assignments(template: dict[str, int], target: dict[str, int], rule: str, scale: ElmdScale,
                site_score=None):
    """Template element -> target element maps with equal counts, best first (at most 24 kept).
    site_score(map) -> float (higher is better) orders the maps first under rule `sites`."""
    from ..compositions import SORT_X, Z_OF  # noqa: PLC0415

    groups: dict[int, tuple[list[str], list[str]]] = {}
    for el, n in sorted(template.items()):
        groups.setdefault(n, ([], []))[0].append(el)
    for el, n in sorted(target.items()):
        groups.setdefault(n, ([], []))[1].append(el)
    if rule == "en":
        def x(el):
            return (float(SORT_X[Z_OF[el]]), el)
        mapping = {}
        for src, dst in groups.values():
            mapping.update(dict(zip(sorted(src, key=x), sorted(dst, key=x))))
        return [mapping]
    options = []
    def key(m):
        petti = sum(abs(scale.position(a) - scale.position(b)) for a, b in m.items())
        return ((-site_score(m) if site_score is not None else 0.0), petti, sorted(m.items()))

    for src, dst in groups.values():
        perms = [dict(zip(src, p)) for p in itertools.permutations(dst)] if len(src) <= 5 else [dict(zip(src, dst))]
        perms.sort(key=key)
        options.append(perms[:4])
    combined = []
    for parts in itertools.product(*options):
        m = {}
        for p in parts:
            m.update(p)
        combined.append(m)
    combined.sort(key=key)
    return combined[:24]


class TemplateLibrary:
    """Known structures indexed by stoichiometry pattern, with ElMD vectors and a volume model."""

    def __init__(self, templates: list[Template], rule: str = "sites", volume: str = "coordination"):
        if rule not in RULES:
            raise ValueError(f"substitution rule {rule!r}: expected one of {', '.join(RULES)}")
        if volume not in VOLUMES:
            raise ValueError(f"volume rule {volume!r}: expected one of {', '.join(VOLUMES)}")
        self.rule, self.volume_rule = rule, volume
        self.scale = ElmdScale()
        self.templates = sorted(templates, key=lambda t: t.structure_id)
        self.groups: dict[tuple, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        by: dict[tuple, list[int]] = {}
        for i, t in enumerate(self.templates):
            by.setdefault(pattern(t.counts), []).append(i)
        for key, idx in by.items():
            vecs = np.stack([self.scale.vector(self.templates[i].counts) for i in idx])
            formulas = [_formula_key(self.templates[i].counts) for i in idx]
            self.groups[key] = (np.array(idx), vecs, formulas)
        self.atomic_volume = fit_atomic_volumes(self.templates) if volume != "template" else {}
        self.site_volume = (fit_atomic_volumes(self.templates, site_key=coordination_key, prior=self.atomic_volume)
                            if volume == "coordination" else {})
        self.site_counts = site_statistics(self.templates) if rule == "sites" else {}

    def site_score(self, template: Template):
        """map -> summed log-frequency of each new element on the template's orbits (rule sites)."""
        sym, _ = template.symmetry()
        if sym.prototype is None or sym.wyckoffs is None:
            return None
        orbits = orbit_keys(template, sym)
        env = template.environment()

        def score(m: dict[str, str]) -> float:
            total = 0.0
            for el, new in m.items():
                for key in (orbits[el], ("coordination", env[el][0])):
                    seen = self.site_counts.get(key, {})
                    n = sum(seen.values())
                    total += np.log((seen.get(new, 0) + 0.5) / (n + 0.5 * 100))
            return total
        return score

    def ranked(self, target: dict[str, int], exclude_same: bool = False) -> list[tuple[int, float]]:
        """(template index, ElMD) of the templates of the target's pattern, best first."""
        group = self.groups.get(pattern(target))
        if group is None:
            return []
        idx, vecs, formulas = group
        d = elmd_many(self.scale.vector(target), vecs)
        keep = np.ones(len(idx), bool)
        if exclude_same:
            same = _formula_key(target)
            keep = np.array([f != same for f in formulas])
        order = np.lexsort((idx, d))
        return [(int(idx[j]), float(d[j])) for j in order if keep[j]]

    def volume_scale(self, template: Template, mapping: dict[str, int]) -> tuple[float, float | None]:
        """(lattice scale factor, predicted volume) of the substituted template."""
        if self.volume_rule == "template":
            return 1.0, None
        v, by_site = self.atomic_volume, self.site_volume
        species = [site.specie.symbol for site in template.structure]
        if not all(mapping.get(el, el) in v and el in v for el in species):
            return 1.0, None
        if by_site:     # each element's volume at the coordination of the site it takes
            cn = {el: coordination_key(template, el)[1] for el in set(species)}
            old = sum(by_site.get((el, cn[el]), v[el]) for el in species)
            new = sum(by_site.get((mapping[el], cn[el]), v[mapping[el]]) for el in species)
        else:
            old = sum(v[el] for el in species)
            new = sum(v[mapping[el]] for el in species)
        if not (old > 0 and new > 0):
            return 1.0, None
        ratio = new / old
        return ratio ** (1 / 3), template.structure.volume * ratio

    def predict(self, target: dict[str, int], k: int, exclude_same: bool = False, seed: int = 0,
                fallback: bool = True) -> list[Prediction]:
        """Up to k distinct structures for the target counts (see the module docstring)."""
        from pymatgen.core import Element, Lattice, Structure  # noqa: PLC0415

        out: list[Prediction] = []
        seen: set[str] = set()
        for rank, (i, dist) in enumerate(self.ranked(target, exclude_same)):
            if len(out) >= k:
                break
            t = self.templates[i]
            scorer = self.site_score(t) if self.rule == "sites" else None
            for alt, mapping in enumerate(assignments(t.counts, target, self.rule, self.scale, scorer)[:MAPS_PER_TEMPLATE]):
                if len(out) >= k:
                    break
                factor, volume = self.volume_scale(t, mapping)
                sym, cell = t.symmetry()
                z_map = {Element(a).Z: Element(b).Z for a, b in mapping.items()}
                new_sym = relabelled(sym, cell, z_map, factor)
                if new_sym.fingerprint in seen:
                    continue
                seen.add(new_sym.fingerprint)
                s = t.structure
                lattice = Lattice(np.asarray(s.lattice.matrix) * factor)
                new = Structure(lattice, [mapping[site.specie.symbol] for site in s], s.frac_coords)
                out.append(Prediction(new, new_sym, "template-substitution", t.structure_id, {
                    "rank": len(out) + 1, "template_rank": rank + 1, "template_structure_id": t.structure_id,
                    "template_formula": _formula_key(t.counts), "elmd": round(dist, 6),
                    "substitution": dict(sorted(mapping.items())), "substitution_rank": alt + 1,
                    "rule": self.rule, "volume_rule": self.volume_rule if volume is not None else "template",
                    "predicted_volume": None if volume is None else round(volume, 4)}))
        if not out and fallback:
            out = random_structures(target, k, seed)
        return out


def _formula_key(counts: dict[str, int]) -> str:
    return "".join(f"{el}{n}" for el, n in sorted(counts.items()))


def orbit_keys(template: Template, sym: Symmetry) -> dict[str, tuple]:
    """element -> (prototype, its sites' Wyckoff letters, rank): the orbits it occupies in the
    template. Distinct orbits can share a letter (P4mm ABON2: the A cation and N on 1a, the B
    cation and O on 1b), so elements with the same letters are told apart by their coordination
    (a cation's 6 or 12 neighbours, an anion's 2): rank 0 for the highest; cached on the template."""
    if template._orbits is not None:
        return template._orbits
    letters: dict[str, set] = {}
    for site, w in zip(template.structure, sym.wyckoffs):
        letters.setdefault(site.specie.symbol, set()).add(w)
    joined = {el: "".join(sorted(ws)) for el, ws in letters.items()}
    shared = {el for el, w in joined.items() if sum(v == w for v in joined.values()) > 1}
    rank = {}
    if shared:
        env = template.environment()
        for el in shared:
            peers = sorted((-env[e][0], env[e][1], e) for e in shared if joined[e] == joined[el])
            rank[el] = [p[2] for p in peers].index(el)
    template._orbits = {el: (sym.prototype, w, rank.get(el, 0)) for el, w in joined.items()}
    return template._orbits


def coordination(structure, shell: float = 1.3) -> dict[str, tuple[int, float]]:
    """element -> (fewest neighbours of its sites within `shell` x the site's shortest distance,
    shortest distance / (V/N)^(1/3)); periodic images included."""
    unit = (structure.volume / len(structure)) ** (1 / 3)
    out: dict[str, tuple[int, float]] = {}
    for site, neighbours in zip(structure, structure.get_all_neighbors(2.5 * unit)):
        d = sorted(n.nn_distance for n in neighbours)
        cn, near = (sum(x <= shell * d[0] for x in d), d[0] / unit) if d else (0, float("inf"))
        old = out.get(site.specie.symbol)
        out[site.specie.symbol] = (cn, near) if old is None else (min(old[0], cn), min(old[1], near))
    return out


def site_statistics(templates: list[Template]) -> dict[tuple, dict[str, int]]:
    """(prototype, Wyckoff letters, rank) -> element -> how many templates hold it there; and, a
    back-off for prototypes with few templates, ('coordination', n) -> element -> how many
    templates hold it with n neighbours (an anion's 2 are never a cation's 6 or 12)."""
    counts: dict[tuple, dict[str, int]] = {}
    for t in templates:
        sym, _ = t.symmetry()
        if sym.prototype is None or sym.wyckoffs is None:
            continue
        env = t.environment()
        for el, key in orbit_keys(t, sym).items():
            for k in (key, ("coordination", env[el][0])):
                d = counts.setdefault(k, {})
                d[el] = d.get(el, 0) + 1
    return counts


def coordination_key(template: Template, el: str) -> tuple[str, int]:
    return el, int(template.environment()[el][0])


def fit_atomic_volumes(templates: list[Template], ridge: float = 0.001, site_key=None,
                       prior: dict | None = None) -> dict:
    """Per-element volumes (Å^3) minimising sum (V/N - mean_sites v_el)^2 + ridge N |v - prior|^2:
    the prior is the median volume per atom of the structures, so an element the fit cannot
    separate from its neighbours (every perovskite has one A, one B, three X) keeps a plain size.
    site_key(template, element) -> key: one volume per key instead (volume rule `coordination`:
    (element, coordination), the prior then the element's own volume from `prior`)."""
    if not templates:
        return {}
    key = site_key or (lambda t, el: el)
    keys = sorted({key(t, el) for t in templates for el in t.counts}, key=str)
    col = {k: j for j, k in enumerate(keys)}
    a = np.zeros((len(templates), len(keys)))
    b = np.zeros(len(templates))
    for r, t in enumerate(templates):
        n = len(t.structure)
        for site in t.structure:
            a[r, col[key(t, site.specie.symbol)]] += 1.0 / n
        b[r] = t.structure.volume / n
    base = float(np.median(b))
    start = np.array([(prior or {}).get(k[0] if isinstance(k, tuple) else k, base) for k in keys])
    lam = ridge * len(templates)      # per structure, so the prior weighs the same at any library size
    # one BLAS thread: a BLAS product's or solve's rounding depends on its thread count, and a
    # predicted lattice must not (a run resumed in a process with other threads writes the same cells)
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    with threadpool_limits(limits=1, user_api="blas"):
        v = np.linalg.solve(a.T @ a + lam * np.eye(len(keys)), a.T @ b + lam * start)
    return {k: float(v[j]) for k, j in col.items() if v[j] > 0.5}


def random_structures(target: dict[str, int], k: int, seed: int) -> list[Prediction]:
    """pyxtal random symmetric structures (the flagged fallback): the first space groups of
    FALLBACK_SPACEGROUPS that pyxtal can fill with the counts, one structure each."""
    import warnings  # noqa: PLC0415

    from pyxtal import pyxtal  # noqa: PLC0415

    from .symmetry import analyse_cell as cell_of  # noqa: PLC0415

    out = []
    elements = sorted(target)
    for sg in FALLBACK_SPACEGROUPS:
        if len(out) >= k:
            break
        for mult in (1, 2):
            crystal = pyxtal()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    crystal.from_random(3, sg, elements, [target[e] * mult for e in elements],
                                        random_state=(seed * 1009 + sg * 7 + mult) % (2 ** 31))
            except Exception:  # noqa: BLE001 - pyxtal raises when the counts do not fit the group
                continue
            if not crystal.valid:
                continue
            s = crystal.to_pymatgen()
            sym, _ = cell_of(s)
            out.append(Prediction(s, sym, "pyxtal-random", None, {
                "rank": len(out) + 1, "fallback": "no template of this stoichiometry pattern",
                "spacegroup_requested": sg, "formula_units": mult, "seed": seed}))
            break
    return out
