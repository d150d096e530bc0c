"""Reference phases of a chemical system built offline from pymatgen's AFLOW prototype library.

A hull from structures needs its binaries and elements relaxed with the same potential; where a
store holds only ternaries (the seed-003 Mg-Mn-O set), these are built from the prototypes that
pymatgen ships (`pymatgen/analysis/prototypes/aflow_prototypes.json.gz`, the AFLOW Library of
Crystallographic Prototypes, Mehl et al. 2017): the prototype's structure with its species
substituted. A substituted cell's volume is pymatgen's DLSVolumePredictor estimate (bond-valence
data shipped with pymatgen) so the relaxation starts near the right density; an unsubstituted
prototype (hcp Mg, alpha-Mn, hausmannite Mn3O4, alpha-O2) keeps the library's experimental cell.
Each structure is written with origin 'known', method 'aflow-prototype' and details naming the
AFLOW label, mineral, substitution and volume rule, so the stability rows that use them say so.
"""

from __future__ import annotations

from dataclasses import dataclass

METHOD = "aflow-prototype"


@dataclass(frozen=True)
class PrototypePhase:
    formula: str                 # the reduced formula the built cell has
    aflow: str                   # AFLOW prototype label in pymatgen's library
    substitution: tuple          # ((library species, new species), ...); () keeps the prototype
    note: str                    # what the phase is (the known phase it stands for)


# Mg-Mn-O: the binaries and elements of the seed-003 system (state the stand-ins honestly: MnO's
# ground state is an antiferromagnetic distortion of rocksalt; Mn2O3's is bixbyite, corundum is
# its high-pressure form; the potential is not spin-resolved in its energies).
MGMNO = (
    PrototypePhase("MgO", "AB_cF8_225_a_b", (("Na", "Mg"), ("Cl", "O")), "periclase, rocksalt (B1)"),
    PrototypePhase("MnO", "AB_cF8_225_a_b", (("Na", "Mn"), ("Cl", "O")), "manganosite, rocksalt (B1)"),
    PrototypePhase("MnO2", "A2B_tP6_136_f_a", (("Ti", "Mn"),), "pyrolusite beta-MnO2, rutile (C4)"),
    PrototypePhase("Mn3O4", "A3B4_tI28_141_ad_h", (), "hausmannite, tetragonal spinel"),
    PrototypePhase("Mn2O3", "A2B3_hR10_167_c_e", (("Al", "Mn"),), "Mn2O3 in the corundum (D5_1) structure"),
    PrototypePhase("Mn2O3", "AB3C6_cI80_206_a_d_e", (("Fe", "Mn"),), "bixbyite (D5_3), Fe sites made Mn"),
    PrototypePhase("Mg", "A_hP2_194_c", (), "magnesium, hcp (A3)"),
    PrototypePhase("Mn", "A_cI58_217_ac2g", (), "alpha-Mn (A12)"),
    PrototypePhase("O2", "A_mC4_12_i", (), "alpha-O2 molecular crystal (no vdW in the potential)"),
)
SYSTEMS = {frozenset({"Mg", "Mn", "O"}): MGMNO}


def library_entry(aflow: str) -> dict:
    from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY  # noqa: PLC0415

    found = [e for e in AFLOW_PROTOTYPE_LIBRARY if e["tags"]["aflow"] == aflow]
    if len(found) != 1:
        raise KeyError(f"AFLOW prototype {aflow!r}: {len(found)} entries in pymatgen's library")
    return found[0]


def build(phase: PrototypePhase):
    """(pymatgen Structure, provenance dict) of one phase: primitive cell, species substituted."""
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor  # noqa: PLC0415

    entry = library_entry(phase.aflow)
    s = entry["snl"].structure.copy()
    if phase.substitution:
        s.replace_species(dict(phase.substitution))
    s = s.get_primitive_structure()
    if s.composition.reduced_formula != phase.formula:
        raise ValueError(f"{phase.aflow} with {phase.substitution} is {s.composition.reduced_formula}, "
                         f"not {phase.formula}")
    volume = "library cell (experimental)"
    if phase.substitution:
        s.scale_lattice(DLSVolumePredictor().predict(s))
        volume = "pymatgen DLSVolumePredictor"
    tags = entry["tags"]
    return s, {"source": "pymatgen AFLOW prototype library", "aflow": phase.aflow,
               "mineral": tags.get("mineral"), "strukturbericht": tags.get("strukturbericht"),
               "substitution": [list(p) for p in phase.substitution], "volume": volume, "phase": phase.note,
               "elemental_reference": phase.formula.rstrip("2") if len(s.composition.elements) == 1 else None}


def system_phases(elements) -> tuple[PrototypePhase, ...]:
    """The prototype phases known for a chemical system; KeyError if there are none."""
    key = frozenset(elements)
    if key not in SYSTEMS:
        raise KeyError(f"no prototype reference phases for {'-'.join(sorted(key))} "
                       f"(known: {', '.join('-'.join(sorted(k)) for k in SYSTEMS)})")
    return SYSTEMS[key]


def write_references(store, elements) -> list[int]:
    """Write the system's prototype phases as structures (origin known, method aflow-prototype);
    idempotent (structure ids are hashes). Returns their structure ids, in MGMNO's order."""
    from ..structures import write_structures  # noqa: PLC0415

    built = [build(p) for p in system_phases(elements)]
    return write_structures(store, [s for s, _ in built], "known", METHOD, details=[d for _, d in built])
