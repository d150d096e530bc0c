"""`matstore relax` over stored perovskites: rows, resume after kill -9, structure-based stability,
merge and export carrying relaxations with their potential's identity."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from matstore.relax import RelaxSettings
from matstore.relax.run import relax_structures
from matstore.store import Store
from _store_data import new_store

REPO = Path(__file__).resolve().parents[1]
CUBIC = [13, 44, 54]       # HgYN3, SbZnN3, TeBN3: converge in a few FIRE steps (test_relax.py)
SETTINGS = RelaxSettings(fmax=0.05, max_steps=12)
SAME = ["structure_id", "model_id", "settings_hash", "batch_no", "composition_id", "relaxed_structure_id",
        "status", "steps", "fmax", "energy_per_atom", "initial_energy_per_atom", "volume_change", "n_sites"]


@pytest.fixture(scope="module")
def inputs(shared_data):
    from pymatgen.core import Structure

    df = pl.read_csv(shared_data / "structures/perov_5/val.csv", n_rows=60)
    cubic = [Structure.from_str(df["cif"][i], fmt="cif") for i in CUBIC]
    strained = cubic[0].copy()
    strained.apply_strain(0.03)     # a second polymorph-like input of HgYN3, off its minimum
    return cubic, strained


@pytest.fixture(scope="module")
def chgnet():
    import torch

    from matstore.models import potential

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the kill test's subprocess runs with OMP_NUM_THREADS=1 too
    yield potential.load("chgnet")
    torch.set_num_threads(threads)


def _stored(tmp_path, name, inputs):
    from matstore.structures import write_structures

    store = new_store(tmp_path / name)
    cubic, strained = inputs
    known = write_structures(store, cubic, "known", "cif")
    tmpl = write_structures(store, [strained], "template", "template-substitution", parents=[known[0]])
    return store, known, tmpl


def _rows(store, run_id=None):
    where = "" if run_id is None else f" WHERE run_id = {int(run_id)}"
    return store.query(f"SELECT {', '.join(SAME)} FROM relaxations{where} ORDER BY structure_id")


@pytest.mark.slow
def test_relax_writes_rows_and_stability(tmp_path, inputs, chgnet):
    store, known, tmpl = _stored(tmp_path, "r.duckdb", inputs)
    res = relax_structures(store, None, "chgnet", SETTINGS, batch=2, loaded=chgnet)
    assert res.n_selected == res.n_relaxed == 4 and sum(res.counts.values()) == 4
    rows = store.query("SELECT r.*, s.origin, s.parent_structure_id, s.method, m.name, m.kind "
                       "FROM relaxations r JOIN structures s ON s.structure_id = r.relaxed_structure_id "
                       "JOIN model_versions m USING (model_id)")
    assert rows.height == 4 and set(rows["status"]) == {"converged"}
    # inputs that relax to the same structure share its row; its parent is one of them
    parents = rows.group_by("relaxed_structure_id").agg(pl.col("structure_id"), pl.col("parent_structure_id").first())
    assert all(p in ids for p, ids in zip(parents["parent_structure_id"], parents["structure_id"]))
    assert set(rows["origin"]) == {"relaxed"} and set(rows["method"]) == {"chgnet-0.3.0"}
    assert set(rows["kind"]) == {"potential"} and rows["energy_per_atom"].is_finite().all()
    again = relax_structures(store, None, "chgnet", SETTINGS, batch=2, loaded=chgnet)
    assert again.n_relaxed == 0 and store.query("SELECT count(*) n FROM relaxations")["n"][0] == 4
    low = store.query("SELECT * FROM lowest_polymorph ORDER BY formula")
    assert low.height == 3 and low.filter(pl.col("formula") == "YHgN3")["n_inputs"][0] == 2

    from matstore.relax.stability import REFERENCE, structure_stability

    st = structure_stability(store, "chgnet", RelaxSettings(fmax=0.05, max_steps=25), batch=8, loaded=chgnet)
    assert st.n_compositions == 3 + 7 and not st.missing     # the compounds and their elements
    assert set(st.elements) == {"Hg", "Y", "N", "Sb", "Zn", "Te", "B"}
    assert st.elements["N"][2] == "diatomic-in-box" and st.elements["Y"][2] == "ase-reference-state"
    stab = store.query("SELECT s.* FROM stability s JOIN compositions c USING (composition_id) "
                       "WHERE reference = ? AND c.n_elements > 1", [REFERENCE])
    assert stab.height == 3 and stab["convention"].str.contains("MP2020").all()
    assert (stab["e_above_hull"] >= -1e-9).all()     # every composition here is a reference phase
    assert stab["reference_structures"].list.len().min() >= 4   # its phase and 3+ elements
    # the formation energy is the potential's energy against the elements' relaxed energies
    hg = stab.join(low, on="composition_id").filter(pl.col("formula") == "YHgN3").row(0, named=True)
    e = st.elements
    expect = hg["energy_per_atom"] - (e["Y"][0] + e["Hg"][0] + 3 * e["N"][0]) / 5
    assert hg["formation_energy_per_atom"] == pytest.approx(expect, abs=1e-6)
    assert hg["structure_id"] == hg["structure_id_right"]

    # merge and export carry relaxed structures and energies with the potential's identity
    from matstore.export import export_parquet
    from matstore.merge import merge

    other = new_store(tmp_path / "other.duckdb")
    merge(other, store.path)
    got = other.query("SELECT r.energy_per_atom, m.name, m.weights_sha256, m.config->>'convention' AS conv, "
                      "s.origin FROM relaxations r JOIN model_versions m USING (model_id) "
                      "JOIN structures s ON s.structure_id = r.relaxed_structure_id ORDER BY r.energy_per_atom")
    mine = store.query("SELECT r.energy_per_atom, m.weights_sha256 FROM relaxations r JOIN model_versions m "
                       "USING (model_id) ORDER BY r.energy_per_atom")
    assert got["energy_per_atom"].to_list() == mine["energy_per_atom"].to_list()
    assert set(got["name"]) == {"chgnet-0.3.0"} and set(got["weights_sha256"]) == set(mine["weights_sha256"])
    assert got["conv"].str.contains("MP2020").all() and set(got["origin"]) == {"relaxed"}
    assert other.query("SELECT count(*) n FROM stability WHERE structure_id IS NOT NULL")["n"][0] == 10
    out = export_parquet(store, tmp_path / "export")
    assert {"relaxations", "structures", "model_versions"} <= set(out["table"])
    exp = pl.read_parquet(tmp_path / "export/relaxations/*.parquet").join(
        pl.read_parquet(tmp_path / "export/model_versions/*.parquet"), on="model_id")
    assert set(exp["weights_sha256"]) == set(mine["weights_sha256"]) and exp.height == mine.height


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, inputs, chgnet):
    full, _, _ = _stored(tmp_path, "full.duckdb", inputs)
    ref = relax_structures(full, None, "chgnet", SETTINGS, batch=1, loaded=chgnet)
    assert ref.n_relaxed == 4

    store, _, _ = _stored(tmp_path, "killed.duckdb", inputs)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MATSTORE_DB": store.path}
    proc = subprocess.Popen([sys.executable, "-m", "matstore.cli", "relax", "--batch", "1", "--fmax", "0.05",
                             "--max-steps", "12", "--no-progress"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    n = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            n = Store(store.path, read_only=True, lock_timeout=1).query(
                "SELECT count(*) n FROM relaxations")["n"][0]
        except Exception:  # noqa: BLE001 - the writer holds the file for a moment
            continue
        if n >= 1:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= n < 4, proc.stderr.read().decode()[-2000:]
    run_id = store.query("SELECT max(run_id) r FROM runs WHERE kind = 'relax'")["r"][0]
    res = relax_structures(store, resume=run_id, loaded=chgnet)
    assert res.run_id == run_id and 0 < res.n_relaxed < 4
    assert _rows(store).equals(_rows(full))
    assert store.query("SELECT status FROM runs WHERE run_id = ?", [run_id])["status"][0] == "done"
    a = store.query("SELECT structure_id, lattice, frac_coords FROM structures WHERE origin = 'relaxed' ORDER BY 1")
    b = full.query("SELECT structure_id, lattice, frac_coords FROM structures WHERE origin = 'relaxed' ORDER BY 1")
    assert a.equals(b)
