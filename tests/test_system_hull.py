"""Mg-Mn-O hull from structures: prototype reference phases from pymatgen's AFLOW library, the
single-point selection of known structures, and a hull of relaxed known phases with compositions
left out (the seed-003 setting), on real shared structures."""

from __future__ import annotations

import numpy as np
import pytest

from matstore.relax import prototypes
from matstore.relax.system_hull import known_hull, lowest_per_composition, place_inputs, system_known
from _store_data import new_store


def test_prototype_phases_are_the_named_structures():
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    seen = set()
    for phase in prototypes.MGMNO:
        s, prov = prototypes.build(phase)
        assert s.composition.reduced_formula == phase.formula
        assert prov["aflow"] == phase.aflow and prov["source"].startswith("pymatgen AFLOW")
        # the space group number is the AFLOW label's third field, and the substituted cell is the
        # library's structure up to volume
        assert SpacegroupAnalyzer(s, symprec=0.05).get_space_group_number() == int(phase.aflow.split("_")[2])
        lib = prototypes.library_entry(phase.aflow)["snl"].structure.copy()
        if phase.substitution:
            lib.replace_species(dict(phase.substitution))
            assert prov["volume"] == "pymatgen DLSVolumePredictor"
            assert not np.isclose(s.volume / len(s), lib.volume / len(lib))
        else:
            assert np.isclose(s.volume / len(s), lib.volume / len(lib))
        assert StructureMatcher().fit(s, lib)
        seen.add(phase.formula)
    # the binaries and elements of Mg-Mn-O are all there
    assert {"MgO", "MnO", "MnO2", "Mn3O4", "Mn2O3", "Mg", "Mn", "O2"} <= seen
    with pytest.raises(KeyError, match="no prototype reference phases for Fe-O"):
        prototypes.system_phases({"Fe", "O"})


def test_known_structures_screened_and_lowest_chosen(tmp_path, shared_data):
    from matstore.ingest import run

    store = new_store(tmp_path / "m.duckdb")
    run(store, "structures", file=str(shared_data / "structures/mgmno/mgmno_structures.npy"), limit=24)
    prototypes.write_references(store, ("Mg", "Mn", "O"))
    every = system_known(store, ("Mg", "Mn", "O"))
    assert len(every) == 24            # the prototypes are references, not screened structures
    two = system_known(store, ("Mg", "Mn", "O"), screen=2)
    per = {}
    for sid, cid in two:
        per.setdefault(cid, []).append(sid)
    assert max(map(len, per.values())) == 2 and set(per) == {c for _, c in every}
    assert all(ids == sorted(s for s, c in every if c == cid)[:2] for cid, ids in per.items())
    # energies: any per-structure number; the k lowest per composition, ties broken by id
    energy = {sid: float(sid % 997) for sid, _ in every}
    chosen = lowest_per_composition(every, energy, 1)
    assert len(chosen) == len(per)
    for cid in per:
        mine = [s for s, c in every if c == cid]
        assert min(mine, key=lambda s: (energy[s], s)) in chosen


@pytest.mark.slow
def test_hull_of_relaxed_known_phases_leaves_out_compositions(tmp_path):
    import torch

    from matstore.models import potential
    from matstore.models.potential.registry import register
    from matstore.relax import RelaxSettings
    from matstore.relax.run import relax_structures
    from matstore.structures import write_structures

    torch.set_num_threads(1)
    pot = potential.load("chgnet")
    store = new_store(tmp_path / "h.duckdb")
    phases = {p.formula: p for p in prototypes.MGMNO}
    built = [prototypes.build(phases[f]) for f in ("MgO", "Mg", "O2")]
    ids = write_structures(store, [s for s, _ in built], "known", prototypes.METHOD, details=[d for _, d in built])
    # fmax 10 eV/Å: every input is converged as it is, so the energies are single points we can check
    relax_structures(store, "s.structure_id IN (" + ", ".join(map(str, ids)) + ")", "chgnet",
                     RelaxSettings(fmax=10, max_steps=5), batch=4, loaded=pot)
    from pymatgen.io.ase import AseAtomsAdaptor

    e = [p.energy / len(s) for p, (s, _) in zip(pot.predict([AseAtomsAdaptor.get_atoms(s) for s, _ in built]), built)]
    model_id, _ = register(store, "chgnet")
    formation = e[0] - (e[1] + e[2]) / 2
    assert formation < -1      # MgO is strongly bound under any sane potential

    on = place_inputs(store, model_id, [ids[0]], known_hull(store, model_id))
    assert on[0]["e_above_hull"] == pytest.approx(0, abs=1e-6)
    # without MgO among the known phases the hull is the elements': MgO sits its formation energy below
    off = place_inputs(store, model_id, [ids[0]], known_hull(store, model_id, exclude=("MgO",)))
    assert off[0]["e_above_hull"] == pytest.approx(formation, abs=1e-4)
    assert off[0]["e_above_hull_before"] == pytest.approx(formation, abs=1e-4)   # converged at step 0
    assert on[0]["status"] == "converged" and on[0]["steps"] == 0

    # the structure-based stability rows of this store, and the screen that requires them
    from matstore.relax.stability import structure_stability

    run = structure_stability(store, "chgnet", RelaxSettings(fmax=10, max_steps=5), loaded=pot)
    assert run.n_compositions == 3 and not run.missing
    rows = store.query("SELECT formula, e_above_hull, potential, input_method FROM screen_structure_stable")
    assert rows.height == 3     # Mg, MgO, O2: each on its own hull
    assert set(rows["input_method"]) == {prototypes.METHOD}
    assert (rows["e_above_hull"].abs() < 1e-6).all() and rows["potential"][0].startswith("chgnet")


@pytest.mark.slow
def test_system_hull_relaxes_the_lowest_single_points_and_places_every_composition(tmp_path, shared_data):
    import torch

    from matstore.ingest import run
    from matstore.models import potential
    from matstore.relax import RelaxSettings
    from matstore.relax.system_hull import system_hull

    torch.set_num_threads(1)
    pot = potential.load("chgnet")
    store = new_store(tmp_path / "s.duckdb")
    run(store, "structures", file=str(shared_data / "structures/mgmno/mgmno_structures.npy"), limit=12)
    # fmax 10 eV/Å: inputs count as converged as they are (single points), so this stays cheap
    res = system_hull(store, ("Mg", "Mn", "O"), "chgnet", per_composition=1, screen=3,
                      settings=RelaxSettings(fmax=10, max_steps=3), loaded=pot)
    known = system_known(store, ("Mg", "Mn", "O"), 3)
    assert set(res.single_points) == {sid for sid, _ in known}
    assert res.selected == lowest_per_composition(known, res.single_points, 1)
    relaxed = store.query(f"SELECT structure_id FROM relaxations WHERE run_id = {res.relax_run}")["structure_id"]
    assert set(relaxed) == set(res.selected) | set(res.prototype_ids)
    st = store.query("SELECT c.formula, st.e_above_hull, st.reference_structures FROM stability st "
                     "JOIN compositions c USING (composition_id) WHERE st.reference = 'relaxed-known'")
    ternaries = st.filter(st["formula"].str.contains("Mg") & st["formula"].str.contains("Mn"))
    assert ternaries.height == len({c for _, c in known})
    assert (st["e_above_hull"] >= -1e-6).all()   # every composition's lowest is a known phase here
    # a ternary's hull names the prototype binaries' relaxed structures among its references
    refs = set(ternaries["reference_structures"][0])
    parents = store.query("SELECT s.structure_id, i.method FROM structures s JOIN structures i "
                          "ON i.structure_id = s.parent_structure_id")
    methods = {m for sid, m in parents.iter_rows() if sid in refs}
    assert prototypes.METHOD in methods and "mgmno-image" in methods
