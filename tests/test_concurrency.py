"""Two processes on one store: a writer committing batches, a reader querying in a loop.

The reader must never see a lock error, never see a partial batch, see counts that only grow,
and not starve the writer (nor be starved by it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from matstore.store import Store, StoreError
from _store_data import new_store

BATCH = 500

WRITER = r"""
import json, sys, time
import numpy as np, polars as pl
from matstore.store import Store, append

path, n_batches, compute_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
store = Store(path)
with store.transaction() as con:
    con.execute("INSERT INTO runs (run_id, kind, status, started_at) VALUES (1, 'generate', 'running', now())")
waits = []
for b in range(n_batches):
    time.sleep(compute_s)  # the batch is computed outside any connection
    rows = pl.DataFrame({"run_id": [1] * %(batch)d, "batch_no": [b] * %(batch)d,
                         "sample_no": np.arange(%(batch)d) + b * %(batch)d,
                         "composition_id": np.arange(%(batch)d) * 7919 + b})
    t = time.perf_counter()
    with store.transaction() as con:
        waits.append(time.perf_counter() - t)
        append(con, "generated", rows)
        con.execute("INSERT INTO run_batches VALUES (1, ?, ?, ?, 0.0, now())", [b, %(batch)d, %(batch)d])
        con.execute("UPDATE runs SET n_written = n_written + ? WHERE run_id = 1", [%(batch)d])
with store.transaction() as con:
    con.execute("UPDATE runs SET status = 'done', finished_at = now() WHERE run_id = 1")
print(json.dumps({"open_wait_max": max(waits), "open_wait_mean": sum(waits) / len(waits)}))
""" % {"batch": BATCH}

READER = r"""
import json, os, sys, time
from matstore.store import Store

path, done_flag, max_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = Store(path)
snaps, lat, errors = [], [], []
end = time.monotonic() + max_s
while time.monotonic() < end:
    finished = os.path.exists(done_flag)
    t = time.perf_counter()
    try:
        df = store.query("SELECT (SELECT count(*) FROM generated) AS samples, "
                         "(SELECT count(*) FROM run_batches) AS batches, "
                         "(SELECT n_written FROM runs WHERE run_id = 1) AS n_written")
        snaps.append([int(df["samples"][0]), int(df["batches"][0]),
                      None if df["n_written"][0] is None else int(df["n_written"][0])])
    except Exception as e:  # the test asserts there are none
        errors.append(f"{type(e).__name__}: {e}")
    lat.append(time.perf_counter() - t)
    if finished:
        break
print(json.dumps({"snaps": snaps, "lat": lat, "errors": errors}))
"""


def _start(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_reader_process_sees_growing_whole_batches_while_writer_process_commits(tmp_path):
    path = tmp_path / "shared.duckdb"
    new_store(path)
    done = tmp_path / "writer.done"
    n_batches = 40
    reader = _start(READER, path, done, 90)
    writer = _start(WRITER, path, n_batches, 0.02)
    w = _finish(writer)
    done.touch()
    r = _finish(reader)

    assert r["errors"] == []
    snaps = r["snaps"]
    assert len(snaps) >= 10, f"reader got only {len(snaps)} reads in while the writer ran"
    samples = [s[0] for s in snaps]
    assert samples == sorted(samples), "counts went backwards"
    # never a partial batch: samples, batch rows and the run's counter move together
    assert all(s == b * BATCH for s, b, _ in snaps), snaps
    assert all(n is None or n == s for s, _, n in snaps), snaps
    assert len({s for s in samples if 0 < s < n_batches * BATCH}) >= 3, \
        "the reader saw no intermediate progress: it was starved while the writer ran"
    assert samples[-1] == n_batches * BATCH
    # neither side waits long for the other (generous bounds: CI shares 2 cores)
    lat = sorted(r["lat"])
    assert lat[int(0.95 * (len(lat) - 1))] < 2.0, lat[-5:]
    assert w["open_wait_max"] < 5.0, w


@pytest.mark.slow
def test_cli_query_during_a_run_shows_progress_and_no_lock_error(tmp_path):
    path = tmp_path / "shared.duckdb"
    new_store(path)
    writer = _start(WRITER, path, 60, 0.05)
    seen = []
    try:
        for _ in range(3):
            q = subprocess.run([sys.executable, "-m", "matstore.cli", "query", "--db", str(path), "--csv",
                                "SELECT count(*) AS n FROM generated"],
                               capture_output=True, text=True, timeout=120)
            assert q.returncode == 0, q.stderr
            assert "lock" not in q.stderr.lower()
            seen.append(int(q.stdout.strip().splitlines()[-1]))
    finally:
        _finish(writer)
    assert seen == sorted(seen)
    assert all(n % BATCH == 0 for n in seen)
    assert Store(path).query("SELECT count(*) AS n FROM generated")["n"][0] == 60 * BATCH


HOLD = r"""
import select, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
con.execute("SELECT count(*) FROM compositions").fetchall()
print("holding", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[3]))  # until released (a line or EOF) or at most this long
con.close()
"""


def _hold(path, mode: str, seconds: float) -> subprocess.Popen:
    """A plain duckdb process holding the store open, like a notebook: for `seconds`, or until
    release(p) if that comes first."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), mode, str(seconds)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def _release(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.stdin.close()
    p.wait(timeout=30)


def test_writer_waits_for_a_foreign_reader_then_writes(tmp_path):
    """A plain duckdb process (no matstore gate) reading: the writer retries until it closes."""
    store = new_store(tmp_path / "s.duckdb")
    p = _hold(store.path, "ro", 1.0)
    t = time.monotonic()
    with store.transaction() as con:
        con.execute("INSERT INTO runs (run_id, kind, status, started_at) VALUES (1, 'x', 'done', now())")
    waited = time.monotonic() - t
    _release(p)
    assert 0.3 < waited < 10
    assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 1


def test_lock_held_past_timeout_is_a_clear_error_not_a_hang(tmp_path):
    """A foreign read-write connection holds the store for as long as the test needs (not a fixed
    time: a CLI that starts slowly on a loaded machine must still find it held). DuckDB refuses
    even a read-only open while another process holds the file read-write (still so in 2.x), so
    matstore waits MATSTORE_LOCK_TIMEOUT and then fails with one line."""
    store = new_store(tmp_path / "s.duckdb")
    p = _hold(store.path, "rw", 300.0)
    try:
        impatient = Store(store.path, lock_timeout=0.5)
        t = time.monotonic()
        with pytest.raises(StoreError, match="locked by another process"):
            impatient.query("SELECT 1")
        assert 0.5 <= time.monotonic() - t < 4
        q = subprocess.run([sys.executable, "-m", "matstore.cli", "query", "--db", store.path, "SELECT 1"],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "MATSTORE_LOCK_TIMEOUT": "0.5"})
        assert p.poll() is None, "the holder let go before the CLI asked"
        assert q.returncode == 1, (q.stdout, q.stderr)
        assert "Traceback" not in q.stderr and "locked by another process" in q.stderr
        assert len(q.stderr.strip().splitlines()) == 1, q.stderr
    finally:
        _release(p)
    # released: the same command now succeeds at once
    assert impatient.query("SELECT 1 AS one")["one"][0] == 1


def test_writer_gate_is_reentrant_and_released(tmp_path):
    from matstore import locking

    store = new_store(tmp_path / "s.duckdb")
    with store.transaction():
        # nested unit of work in the same process does not deadlock on its own gate
        with locking.writer_turn(store.path, time.monotonic() + 1):
            pass
    # released: another process can take the writer turn at once
    code = ("import time,sys; from matstore import locking\n"
            "with locking.writer_turn(sys.argv[1], time.monotonic() + 2): print('ok')")
    r = subprocess.run([sys.executable, "-c", code, store.path], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "ok", r.stderr


GEN_READER = r"""
import json, sys, time
from matstore.store import Store
store = Store(sys.argv[1])
snaps, errors = [], []
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        df = store.query("SELECT (SELECT count(*) FROM generated) AS g, "
                         "(SELECT coalesce(sum(n_decodable), 0)::BIGINT FROM run_batches) AS d, "
                         "(SELECT count(*) FROM run_batches) AS b, "
                         "(SELECT string_agg(status, ',') FROM runs) AS s")
        snaps.append(list(df.row(0)))
        if df["s"][0] == "done":
            break
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
    time.sleep(0.05)
print(json.dumps({"snaps": snaps, "errors": errors}))
"""


@pytest.mark.slow
def test_reader_process_while_generate_runs(tmp_path, shared_data):
    """The real runner as the writer (a replay generator of real compositions, batches of 300)."""
    import importlib.util

    from pathlib import Path

    import polars as pl

    spec = importlib.util.spec_from_file_location(
        "matstore_crash_bench_c", Path(__file__).resolve().parents[1] / "benchmarks" / "crash.py")
    crash = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = crash
    spec.loader.exec_module(crash)
    csv = tmp_path / "f.csv"
    pl.read_csv(shared_data / "mp" / "e_form.csv").head(1500).write_csv(csv)
    path = tmp_path / "g.duckdb"
    new_store(path)
    reader = _start(GEN_READER, path, 120)
    writer = crash._worker("generate", path, csv, "run", {"generate": {"chunk": 300, "n": 6000}})
    out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err[-2000:]
    r = _finish(reader, timeout=300)
    assert r["errors"] == []
    snaps = r["snaps"]
    g = [s[0] for s in snaps]
    assert g == sorted(g) and snaps[-1][3] == "done" and snaps[-1][2] == 20
    assert all(s[0] == s[1] for s in snaps), "a partial batch was visible"
    assert len({s[2] for s in snaps if 0 < s[2] < 20}) >= 2, "no progress seen while it ran"
