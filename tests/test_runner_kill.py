"""A `matstore generate` process killed with SIGKILL mid-run resumes to the content of an
uninterrupted run; another process reads the store between its batches."""

from __future__ import annotations

import pytest

from matstore import runner
from _runner_helpers import (TINY_GAN, decode_tolerance_for, kill_generate_then_resume,
                             load_compositions, mp_formulas)
from _store_data import new_store


def _content(store, run_id):
    return store.query("SELECT batch_no, sample_no, composition_id FROM generated WHERE run_id = ? "
                       "ORDER BY sample_no", [run_id])


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, read_formulas):
    from matstore.training import train

    store = new_store(tmp_path / "kill.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "mp", values)
    mv = train(store, "gan-mp", epochs=1, max_steps=2, batch_size=64, config=TINY_GAN, device="cpu",
               progress=False)
    tol = decode_tolerance_for(store, mv.ref)
    n, bs = 512 * 48, 512
    full = runner.generate(store, mv.ref, n, batch_size=bs, seed=1, device="cpu", tolerance=tol,
                           progress=False)
    assert full.n_decodable > n // 4

    run_id, _, res = kill_generate_then_resume(store, mv.ref, n, bs, 1, full.run_id,
                                               extra=("--tolerance", repr(tol)))
    assert res.returncode == 0, res.stderr
    assert f"run {run_id} done" in res.stderr
    assert _content(store, run_id).equals(_content(store, full.run_id))
    run = runner.run_status(store, run_id)
    assert run["status"] == "done" and run["n_written"] == full.n_decodable
    b = store.query("SELECT count(*) AS n, sum(n_samples) AS s FROM run_batches WHERE run_id = ?", [run_id])
    assert b["n"][0] == n // bs and b["s"][0] == n
