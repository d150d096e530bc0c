"""`matstore relax --executor`: chunks relaxed on Dask workers (each loads the potential from its
own wheel) are written by this process exactly as an in-process run writes them, and a worker's
chunk is checked as untrusted before anything of it is written."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from matstore.executor import ExecutorError, LocalExecutor, open_executor
from matstore.executor.payloads import encode
from matstore.relax import RelaxSettings
from matstore.relax.run import relax_structures
from _store_data import new_store

CUBIC = [13, 44, 54]       # HgYN3, SbZnN3, TeBN3: converge in a few FIRE steps (test_relax.py)
SETTINGS = RelaxSettings(fmax=0.05, max_steps=12)
SAME = ["structure_id", "model_id", "settings_hash", "batch_no", "composition_id", "relaxed_structure_id",
        "status", "steps", "fmax", "energy_per_atom", "initial_energy_per_atom", "volume_change", "n_sites"]
TABLES = ("relaxations", "structures", "run_batches")


@pytest.fixture(scope="module")
def cubic(shared_data):
    from pymatgen.core import Structure

    df = pl.read_csv(shared_data / "structures/perov_5/val.csv", n_rows=60)
    return [Structure.from_str(df["cif"][i], fmt="cif") for i in CUBIC]


@pytest.fixture(scope="module")
def chgnet():
    import torch

    from matstore.models import potential

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # what each worker runs with
    yield potential.load("chgnet")
    torch.set_num_threads(threads)


def stored(path, structures):
    from matstore.structures import write_structures

    store = new_store(path)
    write_structures(store, structures, "known", "cif")
    return store


def counts(store) -> dict:
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}


class ForgingExecutor(LocalExecutor):
    """Runs the real worker task in this process, then hands the writer a forged copy of its
    result through the same check a Dask worker's result goes through."""

    name = "forging"

    def __init__(self, forge):
        self.forge = forge

    def map(self, items, local_fn, task=None, shared=(), accept=None):
        for item in items:
            yield accept(item, self.forge(task(item, *shared)))


def _table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _set(t: pa.Table, col: str, values) -> pa.Table:
    return t.set_column(t.column_names.index(col), col, pa.array(values, t.schema.field(col).type))


def wrong_species(data):
    t = _table(data)
    nums = t["numbers"].to_pylist()
    nums[0] = [1] + nums[0][1:]           # one site turned into hydrogen
    return encode(_set(t, "numbers", nums))


def nan_energy(data):
    t = _table(data)
    e = t["energy_per_atom"].to_pylist()
    e[-1] = float("nan")
    return encode(_set(t, "energy_per_atom", e))


def missing_id(data):
    return encode(_table(data).slice(0, 1))


def fewer_sites(data):
    t = _table(data)
    nums, frac = t["numbers"].to_pylist(), t["frac_coords"].to_pylist()
    nums[0], frac[0] = nums[0][:-1], frac[0][:-3]
    return encode(_set(_set(t, "numbers", nums), "frac_coords", frac))


def singular_lattice(data):
    t = _table(data)
    lat = t["lattice"].to_pylist()
    lat[0] = [0.0] * 9
    return encode(_set(t, "lattice", lat))


def test_forged_worker_chunks_are_refused_with_nothing_written(tmp_path, cubic):
    store = stored(tmp_path / "forged.duckdb", cubic[:2])
    before = counts(store)
    settings = RelaxSettings(fmax=0.05, max_steps=3)
    for forge, why in [(wrong_species, r"structure -?\d+: the relaxed cell's species differ from the input's"),
                       (nan_energy, r"structure -?\d+: energy_per_atom nan not finite"),
                       (missing_id, "the structure ids differ from the chunk sent .1 rows vs 2"),
                       (fewer_sites, r"structure -?\d+: the relaxed cell has 4 sites, the input 5"),
                       (singular_lattice, r"structure -?\d+: the relaxed lattice's volume 0")]:
        with pytest.raises(ExecutorError, match=f"executor forging: relax chunk 0: {why}") as e:
            relax_structures(store, None, "chgnet", settings, batch=2, executor=ForgingExecutor(forge))
        assert "\n" not in str(e.value)
        assert counts(store) == before, forge.__name__
    # the same chunk, unforged, passes the same check and is written
    res = relax_structures(store, None, "chgnet", settings, batch=2, executor=ForgingExecutor(lambda d: d))
    assert res.n_relaxed == 2 and counts(store)["relaxations"] == 2
    assert store.query("SELECT executor FROM runs ORDER BY run_id DESC LIMIT 1")["executor"][0] == "forging"


def _content(store) -> tuple:
    rows = store.query(f"SELECT {', '.join(SAME)} FROM relaxations ORDER BY structure_id")
    cells = store.query("SELECT structure_id, parent_structure_id, lattice, species, frac_coords, fingerprint "
                        "FROM structures WHERE origin = 'relaxed' ORDER BY structure_id")
    return rows, cells


@pytest.mark.slow
def test_two_workers_store_exactly_the_rows_of_an_in_process_run(tmp_path, cubic, chgnet):
    serial = stored(tmp_path / "serial.duckdb", cubic)
    ref = relax_structures(serial, None, "chgnet", SETTINGS, batch=2, loaded=chgnet)
    store = stored(tmp_path / "two.duckdb", cubic)
    with open_executor("processes:2") as ex:
        res = relax_structures(store, None, "chgnet", SETTINGS, batch=2, executor=ex.client)
        address = ex.client.scheduler.address
    assert res.n_relaxed == ref.n_relaxed == 3 and res.counts == ref.counts
    want, got = _content(serial), _content(store)
    assert want[0].height == 3 and want[0]["energy_per_atom"].is_finite().all()
    assert want[1].height > 0
    for w, g in zip(want, got):
        assert g.equals(w)
    runs = store.query("SELECT executor, workers FROM runs").rows()
    assert runs == [(address, 2)]
    assert serial.query("SELECT executor, workers FROM runs").rows() == [("local", 1)]
    assert np.array_equal(store.query("SELECT n_samples FROM run_batches ORDER BY batch_no")["n_samples"],
                          [2, 1])


def test_the_version_check_compares_the_potentials_package_and_weights():
    from matstore.executor import worker_tasks
    from matstore.models import potential

    ident = potential.resolve("chgnet").identity()
    rec = {"potential": "chgnet-0.3.0", "device": "cpu", **ident}
    want = worker_tasks.identity_of([rec])
    assert want["potential chgnet-0.3.0"] == (f"chgnet {ident['package_version']}, weights sha256 "
                                              f"{ident['weights_sha256']}")
    assert worker_tasks.identity([rec]) == want     # what a worker with this install answers
    other = worker_tasks.identity_of([{**rec, "weights_sha256": "0" * 64}])
    assert other["potential chgnet-0.3.0"] != want["potential chgnet-0.3.0"]
