"""kill -9 at any point: committed batches intact, no partial batch, work marked interrupted,
resume gives the uninterrupted content. A few trials of benchmarks/crash.py plus store-level cases."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from matstore.store import Store
from _store_data import new_store

REPO = Path(__file__).resolve().parents[1]


def _crash_bench():
    spec = importlib.util.spec_from_file_location("matstore_crash_bench", REPO / "benchmarks" / "crash.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


SMALL = {"ingest": {"rows": 6000, "chunk": 500},
         "generate": {"rows": 1500, "chunk": 300, "n": 4500},
         "featurize": {"rows": 6000, "chunk": 500}}


@pytest.fixture(scope="module")
def bench(shared_data, tmp_path_factory):
    crash = _crash_bench()
    return crash.Bench(tmp_path_factory.mktemp("crash"), ["ingest", "generate", "featurize"], SMALL)


def _ok(t) -> None:
    assert t.identical and not t.problems, (t.kind, t.kill_after_s, t.problems)
    assert t.rows_lost == 0 and t.partial_rows == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ingest", "generate", "featurize"])
def test_kill_at_a_random_moment_then_resume_equals_clean_run(bench, kind):
    t = bench.trial(kind, random.Random(hash(kind) % 1000), 0)
    _ok(t)


@pytest.mark.slow
def test_ingest_killed_before_its_first_chunk_resumes_the_same_ingest(bench):
    """The widest window of a whole-file ingest: the ingests row exists, nothing written yet."""
    t = bench.trial("ingest", random.Random(1), 1, kill_when="SELECT count(*) = 1 FROM ingests")
    _ok(t)
    assert t.marked_interrupted


@pytest.mark.slow
def test_generate_killed_mid_run_is_marked_interrupted_and_keeps_whole_batches(bench):
    t = bench.trial("generate", random.Random(2), 2,
                    kill_when="SELECT count(*) >= 3 FROM run_batches")
    _ok(t)
    assert t.marked_interrupted and t.batches_committed >= 3


# --- store level ----------------------------------------------------------------------------

TXN = r"""
import sys, time
import numpy as np, polars as pl
from matstore.store import Store, append
store = Store(sys.argv[1])
for b in range(1000):
    with store.transaction() as con:
        append(con, "generated", pl.DataFrame({"run_id": np.full(5000, 1, np.int32),
               "batch_no": np.full(5000, b, np.int32), "sample_no": np.arange(5000) + 5000 * b,
               "composition_id": np.arange(5000)}))
        con.execute("INSERT INTO run_batches VALUES (1, ?, 5000, 5000, 0, now())", [b])
        if b == int(sys.argv[2]):
            print("inside", flush=True)
            time.sleep(60)  # killed here, with the batch written but not committed
"""


@pytest.mark.slow
def test_kill_inside_a_transaction_leaves_only_committed_batches(tmp_path):
    store = new_store(tmp_path / "t.duckdb")
    p = subprocess.Popen([sys.executable, "-c", TXN, store.path, "3"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "inside"
    p.send_signal(signal.SIGKILL)
    p.wait()
    got = store.query("SELECT count(*) AS n, count(DISTINCT batch_no) AS b, max(batch_no) AS top FROM generated")
    assert got.row(0) == (3 * 5000, 3, 2)
    assert store.query("SELECT count(*) AS n FROM run_batches")["n"][0] == 3
    # the store stays writable after the crash
    with store.transaction() as con:
        con.execute("INSERT INTO run_batches VALUES (1, 3, 1, 1, 0, now())")


def test_a_reused_pid_does_not_keep_dead_work_running(tmp_path):
    """A run whose pid now belongs to another process (another start time) is dead: it is marked
    interrupted on the next write-open and resumes; the same pid with its own start time is not."""
    from matstore.recovery import pid_alive, process_start

    me = process_start(os.getpid())
    if me is None:
        pytest.skip("no /proc here: start times unknown, pids are taken at their word")
    assert pid_alive(os.getpid(), me) and not pid_alive(os.getpid(), me - 3600)
    s = new_store(tmp_path / "p.duckdb")
    host = socket.gethostname()
    with s.transaction() as con:
        con.execute("INSERT INTO runs (run_id, kind, status, started_at, pid, host, pid_started) VALUES "
                    "(1, 'generate', 'running', now(), ?, ?, ?), (2, 'generate', 'running', now(), ?, ?, ?)",
                    [os.getpid(), host, me - 3600, os.getpid(), host, me])
        con.execute("INSERT INTO ingests (ingest_id, source, status, started_at, pid, host, pid_started) "
                    "VALUES (1, 'csv', 'running', now(), ?, ?, ?)", [os.getpid(), host, me - 3600])
    s.forget_prepared()
    with s.connect(write=True):
        pass
    assert dict(s.query("SELECT run_id, status FROM runs").rows()) == {1: "interrupted", 2: "running"}
    assert s.query("SELECT status FROM ingests")["status"][0] == "interrupted"


def test_dead_running_work_is_marked_interrupted_on_next_write_open(tmp_path):

    path = tmp_path / "r.duckdb"
    s = new_store(path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    with s.transaction() as con:
        con.execute("INSERT INTO runs (run_id, kind, status, started_at, pid, host) VALUES "
                    "(1, 'generate', 'running', now(), ?, ?), (2, 'generate', 'running', now(), ?, ?), "
                    "(3, 'generate', 'running', now(), 1, 'another-host')",
                    [int(dead), host, os.getpid(), host])
        con.execute("INSERT INTO ingests (ingest_id, source, status, started_at, pid, host) VALUES "
                    "(1, 'csv', 'running', now(), ?, ?)", [int(dead), host])
    s.forget_prepared()  # a new process would prepare again
    with s.connect(write=True):
        pass
    runs = dict(s.query("SELECT run_id, status FROM runs").rows())
    assert runs == {1: "interrupted", 2: "running", 3: "running"}  # alive, and unknowable host, kept
    assert s.query("SELECT status FROM ingests")["status"][0] == "interrupted"
    from matstore.recovery import interrupted_work

    work = interrupted_work(s)
    assert work.select("what", "id").rows() == [("ingest", 1), ("run", 1)]
    assert "--resume 1" in work.filter(work["what"] == "run")["resume_with"][0]
    from matstore.provenance import provenance

    assert "unfinished work" in provenance(s).tables()


def test_interrupted_predict_and_stability_runs_name_their_own_command(tmp_path):
    """`generate --resume` refuses other kinds: an interrupted predict or stability run is
    completed by the same command again, with the options it was started with."""
    from matstore.recovery import interrupted_work

    s = new_store(tmp_path / "k.duckdb")
    with s.transaction() as con:
        con.execute("INSERT INTO runs (run_id, kind, status, started_at, params) VALUES "
                    "(1, 'predict', 'interrupted', now(), ?), (2, 'stability', 'failed', now(), ?), "
                    "(3, 'generate', 'interrupted', now(), '{}')",
                    ['{"where": "n_elements = $n", "params": {"n": "3"}, "model": "rf-fe@2"}',
                     '{"model": null, "reference": "mp"}'])
    hint = dict(interrupted_work(s).select("id", "resume_with").rows())
    assert hint[1].startswith('matstore predict --model rf-fe@2 --where "n_elements = $n" -p n=3')
    assert hint[2].startswith("matstore stability --reference mp")
    assert hint[3] == "matstore generate --resume 3"
    assert not any("--resume" in hint[k] for k in (1, 2))
