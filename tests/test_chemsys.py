"""Compositions of a chemical system (issue 29, item 1): the shipped transformer sampled within
Mg-Mn-O by masking, and the exhaustive oxidation-state enumerator against pymatgen's guesses and
the seed's 112 real Mg-Mn-O cell compositions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pymatgen.core import Composition

from matstore import runner
from matstore.chemical_systems import EnumerationError, enumerate_system, write_run
from matstore.cli import main
from matstore.errors import MatstoreError
from matstore.registry import load_model
from _store_data import new_store

RULE = {"Mg": 2, "Mn": (2, 4), "O": -2}
IMAGE_CAPS = {"Mg": 8, "Mn": 8, "O": 12}


def shared_cells(shared_data) -> set[tuple[int, int, int]]:
    x = np.load(shared_data / "structures/mgmno/mgmno_structures.npy", allow_pickle=False)
    occ = (x[:, 2:] != 0).any(2)
    return set(zip(occ[:, :8].sum(1).tolist(), occ[:, 8:16].sum(1).tolist(), occ[:, 16:].sum(1).tolist()))


def test_enumeration_equals_pymatgen_oxidation_guesses_and_holds_every_real_composition(shared_data):
    res = enumerate_system("Mg,Mn,O", RULE, max_atoms=28, max_counts=IMAGE_CAPS)
    assert res.elements == ["O", "Mg", "Mn"]   # by atomic number
    got = {tuple(int(v) for v in row) for row in res.cells}
    # independent check: pymatgen finds an integer assignment (Mn 2+/3+/4+ per site) of every kept
    # cell composition, and of none of the others in the same box
    want = set()
    for o in range(1, 13):
        for mg in range(1, 9):
            for mn in range(1, 9):
                if o + mg + mn <= 28 and Composition({"O": o, "Mg": mg, "Mn": mn}).oxi_state_guesses(
                        oxi_states_override={"Mg": [2], "Mn": [2, 3, 4], "O": [-2]}):
                    want.add((o, mg, mn))
    assert got == want
    # the seed's training structures all obey the rule (their cells, as (Mg, Mn, O) counts)
    cells = shared_cells(shared_data)
    assert len(cells) == 112
    assert {(o, mg, mn) for mg, mn, o in cells} <= got
    assert len(res.reduced) == 139 and len(res.cells) == 172     # the paper: 133 (docs/benchmarks/cccgan.md)
    assert "Mg2MnO4" in res.formulas() and "MgMn2O4" in res.formulas()


def test_enumerate_writes_a_run_and_refuses_bad_rules(store):
    out = CliRunner().invoke(main, ["enumerate", "--db", store.path, "--elements", "Mg,Mn,O",
                                    "--oxidation-states", "Mg=2,Mn=2:4,O=-2", "--max-atoms", "28",
                                    "--max-counts", "Mg=8,Mn=8,O=12"])
    assert out.exit_code == 0, out.output
    assert "139 compositions (172 cell compositions), 139 new" in out.output
    run = store.query("SELECT run_id, kind, status, params FROM runs")
    assert run["kind"][0] == "enumerate" and run["status"][0] == "done"
    params = json.loads(run["params"][0])
    assert params["oxidation_states"]["Mn"] == [2.0, 4.0] and params["max_atoms"] == 28
    formulas = set(store.query("SELECT c.formula FROM generated g JOIN compositions c USING "
                               "(composition_id) WHERE run_id = ?", [int(run["run_id"][0])])["formula"])
    assert len(formulas) == 139 and "Mg2MnO4" in formulas and "Mn3O4" not in formulas
    # again: the same set, nothing new
    run_id, n_new = write_run(store, enumerate_system("Mg-Mn-O", RULE, 28, IMAGE_CAPS))
    assert n_new == 0 and run_id == int(run["run_id"][0]) + 1
    # binaries only with --subsystems
    sub = enumerate_system("Mg,Mn,O", RULE, 28, IMAGE_CAPS, all_elements=False)
    assert "MgO" in sub.formulas() and "Mn3O4" in sub.formulas() and "MgO" not in \
        enumerate_system("Mg,Mn,O", RULE, 28, IMAGE_CAPS).formulas()
    for bad in ({"elements": "Mg,Xx"}, {"elements": "Mg,Mn,O", "oxidation": "Mn=a"},
                {"elements": "Mg,Mn,O", "oxidation": "Fe=3"}, {"elements": "Mg,Mn,O", "max_atoms": 0},
                {"elements": "Mg,Mn,O", "max_atoms": 10**6}):
        with pytest.raises(EnumerationError):
            enumerate_system(**bad)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    from matstore.pretrained import import_pretrained

    store = new_store(tmp_path_factory.mktemp("chemsys") / "t.duckdb")
    import_pretrained(store, "transformer-mp")
    return store


def test_transformer_samples_within_a_chemical_system_by_masking(shipped):
    store = shipped
    q = ("SELECT g.batch_no, g.sample_no, c.formula, c.elements FROM generated g JOIN compositions c "
         "USING (composition_id) WHERE run_id = ? ORDER BY sample_no")
    res = runner.generate(store, "transformer-mp", 1200, batch_size=400, seed=3, device="cpu",
                          progress=False, elements="Mg,Mn,O")
    rows = store.query(q, [res.run_id])
    assert len(rows) == 1200
    assert all(set(e) <= {"Mg", "Mn", "O"} for e in rows["elements"].to_list())
    assert any(len(e) < 3 for e in rows["elements"].to_list())    # subsystems too (MnO2, MgO)
    params = json.loads(runner.run_status(store, res.run_id)["params"])
    assert params["sampling"] == {"elements": ["O", "Mg", "Mn"], "all_elements": False}
    # batch 2 is the module's own masked draw
    loaded = load_model(store, "transformer-mp")
    z, counts = loaded.module.sample(400, torch.Generator().manual_seed(runner.batch_seed(3, 2)),
                                     elements=["O", "Mg", "Mn"])
    assert loaded.decode((z, counts), None, 2, 800).keys.tolist() == store.query(
        "SELECT composition_id FROM generated WHERE run_id = ? AND batch_no = 2 ORDER BY sample_no",
        [res.run_id])["composition_id"].to_list()
    every = runner.generate(store, "transformer-mp", 400, seed=3, device="cpu", progress=False,
                            elements=["Mn", "O", "Mg"], all_elements=True)
    assert all(sorted(e) == ["Mg", "Mn", "O"] for e in store.query(q, [every.run_id])["elements"].to_list())
    for bad in ({"elements": "Mg,Xx"}, {"elements": "Mg,Mg"}, {"all_elements": True}):
        with pytest.raises(MatstoreError):
            runner.generate(store, "transformer-mp", 10, device="cpu", progress=False, **bad)
    cli = CliRunner().invoke(main, ["generate", "--db", store.path, "--model", "transformer-mp",
                                    "--elements", "Mg,Mn,O", "-n", "50", "--no-progress"])
    assert cli.exit_code == 0 and "50 samples" in cli.output
