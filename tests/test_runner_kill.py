"""A `matstore generate` process killed with SIGKILL mid-run resumes to the content of an
uninterrupted run; another process reads the store between its batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from matstore import runner
from matstore.store import Store
from _runner_helpers import TINY_GAN, decode_tolerance_for, load_compositions, mp_formulas


def _content(store, run_id):
    return store.query("SELECT batch_no, sample_no, composition_id FROM generated WHERE run_id = ? "
                       "ORDER BY sample_no", [run_id])


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, read_formulas):
    from matstore.training import train

    store = Store.init(tmp_path / "kill.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "mp", values)
    mv = train(store, "gan-mp", epochs=1, max_steps=2, batch_size=64, config=TINY_GAN, device="cpu",
               progress=False)
    tol = decode_tolerance_for(store, mv.ref)
    n, bs = 512 * 48, 512
    full = runner.generate(store, mv.ref, n, batch_size=bs, seed=1, device="cpu", tolerance=tol,
                           progress=False)
    assert full.n_decodable > n // 4

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "matstore.cli", "generate", "--db", store.path, "--model", mv.ref,
           "-n", str(n), "--batch-size", str(bs), "--seed", "1", "--tolerance", repr(tol),
           "--device", "cpu", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run_id, committed, deadline = None, 0, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            # a reader gets in between the writer's batches
            df = store.query("SELECT r.run_id, count(b.batch_no) AS n FROM runs r LEFT JOIN run_batches b "
                             "USING (run_id) WHERE r.run_id > ? AND r.kind = 'generate' GROUP BY 1",
                             [full.run_id])
            if df.height:
                run_id, committed = int(df["run_id"][0]), int(df["n"][0])
                if committed >= 3:
                    break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0].decode()
    assert run_id is not None and 3 <= committed < n // bs, out
    st = store.query("SELECT count(*) AS n FROM run_batches WHERE run_id = ?", [run_id])["n"][0]
    assert st < n // bs                                          # killed mid-way

    res = subprocess.run([sys.executable, "-m", "matstore.cli", "generate", "--db", store.path,
                          "--resume", str(run_id), "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"run {run_id} done" in res.stderr
    assert _content(store, run_id).equals(_content(store, full.run_id))
    run = runner.run_status(store, run_id)
    assert run["status"] == "done" and run["n_written"] == full.n_decodable
    b = store.query("SELECT count(*) AS n, sum(n_samples) AS s FROM run_batches WHERE run_id = ?", [run_id])
    assert b["n"][0] == n // bs and b["s"][0] == n
