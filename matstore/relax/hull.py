"""Formation energies and energies above the hull from structure energies of ONE convention.

Phases are (key, composition, energy per atom) in one potential's convention; elemental
references are energies per atom of the elements under the same potential. pymatgen's
PhaseDiagram (one per chemical system) does the geometry: formation energy per atom against the
elemental references, energy above the lower hull of the reference phases (negative: below it),
and the decomposition into hull phases.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    key: object                # a structure id, or a label
    formula: str               # any formula pymatgen parses (the cell's)
    energy_per_atom: float     # eV/atom, the potential's convention


@dataclass
class Placed:
    key: object
    formation_energy_per_atom: float
    e_above_hull: float
    hull_energy_per_atom: float  # formation energy of the hull at this composition
    decomposition: list        # [(key, reduced formula, atom fraction)]


class Hull:
    """Reference phases + elemental references; place() candidates against them."""

    def __init__(self, references: list[Phase], elements: dict[str, float]):
        from pymatgen.analysis.phase_diagram import PDEntry  # noqa: PLC0415
        from pymatgen.core import Composition, Element  # noqa: PLC0415

        self.elements = dict(elements)
        self._el_entries = {el: PDEntry(Composition({Element(el): 1}), e, name=el, attribute=f"element:{el}")
                            for el, e in self.elements.items()}
        self._refs = []
        for p in references:
            comp = Composition(p.formula)
            self._refs.append((frozenset(str(e) for e in comp.elements),
                               PDEntry(comp, p.energy_per_atom * comp.num_atoms, attribute=p.key)))
        self._diagrams: dict[frozenset, object] = {}

    def missing(self, formula: str) -> list[str]:
        from pymatgen.core import Composition  # noqa: PLC0415

        return sorted(str(e) for e in Composition(formula).elements if str(e) not in self.elements)

    def diagram(self, system: frozenset):
        from pymatgen.analysis.phase_diagram import PhaseDiagram  # noqa: PLC0415

        if system not in self._diagrams:
            entries = [self._el_entries[e] for e in system] + [
                entry for els, entry in self._refs if els <= system]
            self._diagrams[system] = PhaseDiagram(entries)
        return self._diagrams[system]

    def place(self, phase: Phase) -> Placed:
        """Raises KeyError naming the elements without a reference."""
        from pymatgen.analysis.phase_diagram import PDEntry  # noqa: PLC0415
        from pymatgen.core import Composition  # noqa: PLC0415

        missing = self.missing(phase.formula)
        if missing:
            raise KeyError(f"no elemental reference for {', '.join(missing)}")
        comp = Composition(phase.formula)
        pd = self.diagram(frozenset(str(e) for e in comp.elements))
        entry = PDEntry(comp, phase.energy_per_atom * comp.num_atoms, attribute=phase.key)
        decomp, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
        parts = [(e.attribute, e.composition.reduced_formula, float(f)) for e, f in
                 sorted(decomp.items(), key=lambda kv: kv[0].composition.reduced_formula)]
        fe = float(pd.get_form_energy_per_atom(entry))
        return Placed(phase.key, fe, float(e_hull), fe - float(e_hull), parts)
