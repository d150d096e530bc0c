"""Issue 28: generate / predict on a real Dask LocalCluster (2 worker processes on 127.0.0.1)
store exactly the rows of a serial run, survive kill -9 of a worker or of the client (--resume),
refuse unreachable schedulers, other worker versions and forged batches in one line, writing
nothing of a refused batch.

Sizes: the issue asks for generate -n 200,000; here -n 20,000 (10 batches of 2,000) of a narrow
GAN: the box has 2 cores shared with seven other jobs, and 10 batches already exercise ordering,
retries and resume; the mechanism does not depend on n."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from matstore import runner
from matstore.executor import ExecutorError, open_executor, parse, payload_params
from matstore.executor import batch_checks, worker_tasks
from matstore.executor.payloads import encode
from matstore.predict import predict
from matstore.registry.records import get_record
from matstore.stability import compute
from matstore.store import Store
from _runner_helpers import TINY_GAN, decode_tolerance_for, forge_ipc, load_compositions, mp_formulas
from _store_data import new_store

N, BS, SEED = 20_000, 2_000, 3
TABLES = ("generated", "compositions", "predictions", "validity", "stability")


@pytest.fixture(scope="module")
def template(tmp_path_factory, read_formulas):
    """A store of 1,500 real MP compositions, a narrow GAN and a 10-tree forest."""
    from matstore.training import train

    d = tmp_path_factory.mktemp("executor")
    store = new_store(d / "template.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "mp", values)
    with pytest.warns(Warning):   # two training steps decode little at 0.2: the tolerance below
        gan = train(store, "gan-mp", epochs=1, max_steps=2, batch_size=64, config=TINY_GAN,
                    device="cpu", progress=False)
    rf = train(store, "rf-fe", max_rows=1000, config={"n_estimators": 10, "n_jobs": 1}, progress=False)
    tol = decode_tolerance_for(store, gan.ref)
    return {"dir": d, "template": store, "gan": gan.ref, "rf": rf.ref, "tol": tol}


@pytest.fixture(scope="module")
def study(template):
    """The template and a copy where the serial run is done: generate -n N with validity and
    predictions, then predict the rest."""
    serial = _copy(template["template"], template["dir"] / "serial.duckdb")
    _run(serial, template["gan"], template["rf"], template["tol"], "local")
    return {**template, "serial": serial}


def _copy(store: Store, path) -> Store:
    shutil.copy(store.path, path)
    return Store(path)


def _run(store, gan, rf, tol, executor):
    res = runner.generate(store, gan, N, batch_size=BS, seed=SEED, device="cpu", tolerance=tol,
                          progress=False, stages=runner.Stages(True, (), (rf,)), executor=executor)
    predict(store, rf, device="cpu", progress=False, chunk_size=500, executor=executor)
    compute(store, model=rf, reference="mp", chunk_size=2000, progress=False, executor=executor)
    return res


def _content(store: Store, tables, generate_only: bool) -> dict:
    only = {"predictions": " WHERE run_id = 1"} if generate_only else {}   # the generate run's stage
    return {t: store.query(f"SELECT * FROM {t}{only.get(t, '')} ORDER BY ALL") for t in tables}


def _assert_same(store: Store, serial: Store, generate_only: bool = False) -> None:
    tables = TABLES[:4] if generate_only else TABLES
    got, want = _content(store, tables, generate_only), _content(serial, tables, generate_only)
    for t in tables:
        assert want[t].height > 0, t
        assert got[t].equals(want[t]), f"{t}: {got[t].height} rows vs serial {want[t].height}"


@pytest.fixture(scope="module")
def client():
    with open_executor("processes:2") as ex:
        yield ex.client


# ---- fast tier: specs and the checks of a batch, no cluster ----------------------------------

def test_specs_are_parsed_and_remote_plain_tcp_is_refused_before_connecting(store):
    assert parse("local") == ("local", 1, None)
    assert parse("processes:2") == ("processes", 2, None)
    assert parse("dask://127.0.0.1:8786") == ("scheduler", None, "tcp://127.0.0.1:8786")
    assert parse("tls://sched.example:8786") == ("scheduler", None, "tls://sched.example:8786")
    for bad in ("processes:0", "processes:x", "dask://host", "http://h:1", "local; rm -rf /"):
        with pytest.raises(ExecutorError) as e:
            parse(bad)
        assert "\n" not in str(e.value)
    t0 = time.perf_counter()
    with pytest.raises(ExecutorError, match="plain TCP is refused.*--executor-insecure"):
        with open_executor("dask://192.0.2.1:8786"):   # TEST-NET-1: would hang if it connected
            pass
    assert time.perf_counter() - t0 < 5


def test_forged_generate_batches_are_refused_by_the_checks(template):
    study = template
    """A real batch computed by the worker function, then forged three ways."""
    rec = get_record(study["template"], study["gan"])
    p = payload_params(n=N, batch_size=BS, seed=SEED, tolerance=study["tol"], sampling={}, device="cpu")
    data = worker_tasks.generate_batch(1, rec, p)
    batch = batch_checks.decoded_batch(data, 1, BS, BS, "test")
    assert len(batch.keys) > BS // 4
    t = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    width = t.schema.field("z").type.list_size
    counts = t["counts"].combine_chunks().flatten().to_numpy().reshape(-1, width).copy()
    counts[0, 0] = 10**7
    lst = pa.list_(pa.int64(), width)
    forged = forge_ipc(data, counts=pa.FixedSizeListArray.from_arrays(pa.array(counts.reshape(-1)), width))
    with pytest.raises(ExecutorError, match=r"batch 1: a count \(10,000,000\) outside"):
        batch_checks.decoded_batch(forged, 1, BS, BS, "test")
    keys = t["composition_id"].to_numpy().copy()
    other = int(keys[np.flatnonzero(keys != keys[0])[0]])
    keys[0] = other
    with pytest.raises(ExecutorError, match="a key naming another composition"):
        batch_checks.decoded_batch(forge_ipc(data, composition_id=pa.array(keys)), 1, BS, BS, "test")
    with pytest.raises(ExecutorError, match="not batch 2"):
        batch_checks.decoded_batch(data, 2, 2 * BS, BS, "test")
    with pytest.raises(ExecutorError, match="not Arrow IPC bytes"):
        batch_checks.decoded_batch({"sample_no": [1]}, 1, BS, BS, "test")
    assert lst.list_size == width


def test_forged_prediction_chunks_are_refused_by_the_checks(template):
    study = template
    from matstore.featurize import batch_from_arrow
    from matstore.predict import pending

    rec = get_record(study["template"], study["rf"])
    todo = pending(study["template"], rec["model_id"]).slice(0, 200)
    data = worker_tasks.predict_chunk((0, encode(todo)), rec, payload_params(device="cpu"))
    ids = batch_from_arrow(todo).composition_id
    ok = batch_checks.predictions(data, ids, np.zeros(len(ids), bool), "test", 0)
    assert np.isfinite(ok["value"].to_numpy()).all()
    v = ok["value"].to_numpy().copy()
    v[3] = np.nan
    with pytest.raises(ExecutorError, match="NaN for composition_id .* featurizer encodes"):
        batch_checks.predictions(forge_ipc(data, value=pa.array(v)), ids, np.zeros(len(ids), bool), "test", 0)
    v[3] = np.inf
    with pytest.raises(ExecutorError, match="infinite"):
        batch_checks.predictions(forge_ipc(data, value=pa.array(v)), ids, None, "test", 0)
    with pytest.raises(ExecutorError, match="ids differ"):
        batch_checks.predictions(data, ids[::-1], None, "test", 0)
    with pytest.raises(ExecutorError, match="columns"):
        batch_checks.predictions(forge_ipc(data, value=pa.array(v.astype(np.float32))), ids, None, "test", 0)


def test_forged_stability_chunks_are_refused_by_the_checks(template):
    from matstore.stability import load_reference, rows
    from matstore.stability.hull import N_EL, Z_OF_RANK

    ref = load_reference(template["template"], "mp")   # the known phases, as `stability` places them
    h = ref.hulls
    idx = np.arange(60)
    z = np.where(h.phase_ranks < (1 << 30), Z_OF_RANK[np.minimum(h.phase_ranks, N_EL - 1)], 0)[idx]
    args = (h.phase_ids[idx], z, h.phase_frac[idx], h.phase_energy[idx])
    data = worker_tasks.stability_chunk((0, args), ref, payload_params(model_id=0, run_id=1))
    want = rows(ref, *args, 0, 1)
    got = batch_checks.stability_rows(data, want.schema, args[0], "test", 0)
    assert got.equals(want)
    e = want["e_above_hull"].to_numpy(zero_copy_only=False).copy()
    e[5] = np.inf
    with pytest.raises(ExecutorError, match="e_above_hull holds an infinite"):
        batch_checks.stability_rows(forge_ipc(data, e_above_hull=pa.array(e)), want.schema, args[0], "test", 0)
    with pytest.raises(ExecutorError, match="ids differ"):
        batch_checks.stability_rows(data, want.schema, args[0][::-1], "test", 0)


# ---- slow tier: a real LocalCluster ----------------------------------------------------------

@pytest.mark.slow
def test_two_workers_store_exactly_the_rows_of_a_serial_run(study, client, tmp_path):
    store = _copy(study["template"], tmp_path / "two.duckdb")
    res = _run(store, study["gan"], study["rf"], study["tol"], client)
    assert res.n_samples == N
    _assert_same(store, study["serial"])
    runs = store.query("SELECT kind, executor, workers FROM runs ORDER BY run_id")
    assert runs["kind"].to_list() == ["generate", "predict", "stability"]
    assert runs["executor"].to_list() == [client.scheduler.address] * 3
    assert runs["workers"].to_list() == [2, 2, 2]
    assert study["serial"].query("SELECT DISTINCT executor, workers FROM runs").rows() == [("local", 1)]


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_run_finishes_identically(study, client, tmp_path, monkeypatch):
    store = _copy(study["template"], tmp_path / "killw.duckdb")
    pids = client.run(os.getpid)
    killed = []
    real = runner.worker_batch

    def kill_after_batch_2(data, b, *args):
        if b == 2 and not killed:   # later batches are in flight on both workers
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        return real(data, b, *args)

    monkeypatch.setattr(runner, "worker_batch", kill_after_batch_2)
    _run(store, study["gan"], study["rf"], study["tol"], client)
    assert killed and not _alive(killed[0])
    _assert_same(store, study["serial"])
    client.wait_for_workers(2, timeout=120)   # the nanny restarted it for the tests that follow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_kill_9_of_the_client_then_resume_finishes_identically(study, tmp_path):
    store = _copy(study["template"], tmp_path / "killc.duckdb")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--executor", "processes:2", "--no-progress"]
    cmd = [sys.executable, "-m", "matstore.cli", "generate", "--db", str(store.path), "--model", study["gan"],
           "-n", str(N), "--batch-size", str(BS), "--seed", str(SEED), "--device", "cpu",
           "--tolerance", repr(study["tol"]), "--validate", "--predict", study["rf"], *common]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    committed, deadline = 0, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None and committed < 3:
            time.sleep(0.2)
            committed = store.query("SELECT count(*) AS n FROM run_batches")["n"][0]
    finally:
        os.kill(proc.pid, signal.SIGKILL)   # the client only: its workers exit by death_timeout
        out = proc.communicate()[0].decode()
    try:
        assert 3 <= committed < N // BS, out
        res = subprocess.run([sys.executable, "-m", "matstore.cli", "generate", "--db", str(store.path),
                              "--resume", "1", *common], env=env, capture_output=True, text=True, timeout=400)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "run 1 done" in res.stderr
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # the killed client's orphaned workers, if any
        except ProcessLookupError:
            pass
    _assert_same(store, study["serial"], generate_only=True)
    assert store.query("SELECT status, executor, workers FROM runs WHERE run_id = 1").rows() == \
        [("done", "processes:2", 2)]


@pytest.mark.slow
def test_unreachable_scheduler_and_version_mismatch_are_one_line_errors(template, client, tmp_path):
    study = template
    store = _copy(study["template"], tmp_path / "errors.duckdb")
    import socket

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ExecutorError, match=rf"executor tcp://127.0.0.1:{port}: no Dask scheduler answered") as e:
        runner.generate(store, study["gan"], N, batch_size=BS, executor=f"dask://127.0.0.1:{port}",
                        progress=False, tolerance=study["tol"])
    assert "\n" not in str(e.value)
    res = subprocess.run([sys.executable, "-m", "matstore.cli", "predict", "--db", str(store.path), "--model",
                          study["rf"], "--executor", f"dask://127.0.0.1:{port}"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode != 0 and "no Dask scheduler answered" in res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1, res.stderr

    def pretend_other_version():
        from matstore.executor import worker_tasks as w
        w._STATE["version"] = "0.0.1+othercode"

    def restore():
        from matstore.executor import worker_tasks as w
        w._STATE["version"] = None

    client.run(pretend_other_version)
    try:
        for call in (lambda: runner.generate(store, study["gan"], N, batch_size=BS, executor=client,
                                             progress=False, tolerance=study["tol"]),
                     lambda: predict(store, study["rf"], progress=False, executor=client)):
            with pytest.raises(ExecutorError, match="has matstore '0.0.1\\+othercode', this process") as e:
                call()
            assert "\n" not in str(e.value)
    finally:
        client.run(restore)
    assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 0   # checked before any run


@pytest.mark.slow
def test_a_forged_batch_from_a_worker_is_rejected_with_nothing_written(template, client, tmp_path,
                                                                       monkeypatch):
    study = template
    store = _copy(study["template"], tmp_path / "forged.duckdb")
    before = {t: store.query(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}

    def forged_generate(b, record, p):   # runs on a worker: a real batch, one key swapped
        import pyarrow as pa
        from matstore.executor import worker_tasks as w
        from matstore.executor.payloads import encode

        t = pa.ipc.open_stream(pa.py_buffer(w.generate_batch(b, record, p))).read_all()
        keys = t["composition_id"].to_numpy().copy()
        keys[0] = keys[-1] if keys[-1] != keys[0] else keys[0] + 1
        return encode(t.set_column(1, "composition_id", pa.array(keys)))

    monkeypatch.setattr(runner, "generate_batch", forged_generate)
    with pytest.raises(ExecutorError, match="batch 0: sample .* a key naming another composition"):
        runner.generate(store, study["gan"], N, batch_size=BS, seed=SEED, device="cpu",
                        tolerance=study["tol"], progress=False, executor=client)
    monkeypatch.undo()

    def forged_stages(b, record, p, stages):   # runs on a worker: a real batch, its stage rows
        import numpy as np                       # with p_metal out of 0..1
        import pyarrow as pa
        from matstore.executor import worker_tasks as w
        from matstore.executor.payloads import encode

        data, rows = w.generate_batch(b, record, p, stages)
        t = pa.ipc.open_stream(pa.py_buffer(rows)).read_all()
        col = [c for c in t.column_names if c.endswith(".p_metal")][0]
        t = t.set_column(t.column_names.index(col), col, pa.array(np.full(t.num_rows, 2.0)))
        return [data, encode(t)]

    monkeypatch.setattr(runner, "generate_batch", forged_stages)
    with pytest.raises(ExecutorError, match="stage rows of batch 0: model .* p_metal out of bounds"):
        runner.generate(store, study["gan"], N, batch_size=BS, seed=SEED, device="cpu",
                        tolerance=study["tol"], progress=False, executor=client,
                        stages=runner.Stages(True, (), (study["rf"],)))
    monkeypatch.undo()

    def forged_predict(item, record, p):   # runs on a worker: one NaN among real predictions
        import numpy as np
        import pyarrow as pa
        from matstore.executor import worker_tasks as w
        from matstore.executor.payloads import encode

        t = pa.ipc.open_stream(pa.py_buffer(w.predict_chunk(item, record, p))).read_all()
        v = t["value"].to_numpy().copy()
        v[0] = np.nan
        return encode(t.set_column(1, "value", pa.array(v)))

    monkeypatch.setattr(worker_tasks, "predict_chunk", forged_predict)
    with pytest.raises(ExecutorError, match="prediction chunk 0: value is NaN"):
        predict(store, study["rf"], device="cpu", progress=False, chunk_size=500, executor=client)
    after = {t: store.query(f"SELECT count(*) AS n FROM {t}")["n"][0] for t in TABLES}
    assert after == before
    assert store.query("SELECT kind, status FROM runs ORDER BY run_id").rows() == \
        [("generate", "failed"), ("generate", "failed"), ("predict", "failed")]
