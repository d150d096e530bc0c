"""Helpers for the runner/predict/view tests: real compositions into a store, the replay generator
(matstore.testing, shared with the benchmarks), a trained store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl

from matstore import compositions
from matstore.store import Store, append
from matstore.testing import ReplayGenerator  # noqa: F401 (the tests import it from here)
from _store_data import new_store


def load_compositions(store: Store, formulas: list[str], source: str = "mp",
                      values: list[float] | None = None, prop: str = "formation_energy_per_atom",
                      ingest_id: int = 1) -> pl.DataFrame:
    """Parse formulas and append compositions/materials(/properties) rows; returns the rows."""
    comps = [compositions.try_parse(f) for f in formulas]
    keep = [i for i, c in enumerate(comps) if not isinstance(c, str)]
    comps = [comps[i] for i in keep]
    uniq = {c.composition_id: c for c in comps}
    cdf = pl.DataFrame({"composition_id": list(uniq),
                        "formula": [c.formula for c in uniq.values()],
                        "elements": [list(c.elements) for c in uniq.values()],
                        "counts": pl.Series([list(c.counts) for c in uniq.values()], dtype=pl.List(pl.Int32)),
                        "n_elements": [c.n_elements for c in uniq.values()],
                        "n_atoms": [c.n_atoms for c in uniq.values()]})
    mids = [hash((source, i)) & ((1 << 62) - 1) for i in keep]
    mdf = pl.DataFrame({"material_id": mids, "ingest_id": ingest_id, "source": source,
                        "external_id": [f"{source}#{i}" for i in keep],
                        "composition_id": [c.composition_id for c in comps],
                        "raw_formula": [formulas[i] for i in keep]})
    with store.transaction() as con:
        known = {r[0] for r in con.execute("SELECT composition_id FROM compositions").fetchall()}
        append(con, "compositions", cdf.filter(~pl.col("composition_id").is_in(list(known))))
        append(con, "materials", mdf)
        if values is not None:
            append(con, "properties", pl.DataFrame({
                "material_id": mids, "composition_id": [c.composition_id for c in comps],
                "name": prop, "value": [float(values[i]) for i in keep], "unit": "eV/atom"}))
    return mdf


def mp_formulas(read_formulas, n: int, offset: int = 0) -> tuple[list[str], np.ndarray]:
    df = read_formulas("mp/e_form.csv")  # the file is sorted by target: take a seeded shuffle
    df = df.sample(fraction=1.0, shuffle=True, seed=0).slice(offset, n)
    return df["formula"].to_list(), df[df.columns[1]].to_numpy()


def trained_store(tmp_path_factory, read_formulas, name: str, cnn: bool = False):
    """A store of 2,000 real MP compositions with formation energies and an rf-fe model trained
    on them (and a 1-epoch cnn-fe where cnn): (store, formulas, [model refs])."""
    from matstore import training

    store = new_store(tmp_path_factory.mktemp(name) / f"{name}.duckdb")
    formulas, values = mp_formulas(read_formulas, 2000)
    load_compositions(store, formulas, "mp", values)
    models = [training.train(store, "rf-fe", max_rows=1500, config={"n_estimators": 20, "n_jobs": 1},
                             progress=False)]
    if cnn:
        models.append(training.train(store, "cnn-fe", max_rows=600, epochs=1, progress=False))
    return store, formulas, models


def small_study(tmp_path_factory, read_formulas, name: str) -> Path:
    """A small real study, for tests that copy it (copy_store) and attack or query the copy: 400
    MP formulas with formation energies, an RF predictor, a generation run (some novel
    candidates), validity and the candidates' predictions. Returns the file's path."""
    from matstore import runner, training
    from matstore.featurize import validate_store
    from matstore.predict import predict

    store = new_store(tmp_path_factory.mktemp(name) / "template.duckdb")
    formulas, values = mp_formulas(read_formulas, 600)
    load_compositions(store, formulas[:400], "mp", values[:400])
    mv = training.train(store, "rf-fe", max_rows=350, config={"n_estimators": 10, "n_jobs": 1},
                        progress=False)
    runner.generate(store, ReplayGenerator(formulas), 1200, batch_size=600, seed=5, device="cpu",
                    progress=False)
    validate_store(store, progress=False)
    predict(store, mv.ref, where="composition_id IN (SELECT composition_id FROM candidates)",
            device="cpu", progress=False)
    return Path(store.path)


def copy_store(template: Path, path: Path) -> Store:
    """A private copy of a store file (and its WAL) at path."""
    shutil.copy(template, path)
    if Path(str(template) + ".wal").exists():
        shutil.copy(str(template) + ".wal", str(path) + ".wal")
    return Store(path)


# A narrow Table 3.2 GAN for tests about the runner, not about GAN quality.
TINY_GAN = {"generator": {"latent_dim": 16, "fc_channels": 8,
                          "deconvs": [[8, 5, 5, 2, 2], [8, 3, 3, 2, 1], [4, 3, 3, 2, 1], [1, 3, 3, 2, 1]]},
            "critic": {"convs": [[4, 3, 3, 2, 1], [8, 3, 3, 2, 1], [8, 3, 3, 2, 1], [8, 5, 5, 2, 2]]}}


def decode_tolerance_for(store: Store, ref: str) -> float:
    """A few training steps do not make a GAN's maps decodable at MatGAN's 0.2 threshold: put the
    threshold at the typical 4th-highest cell so most samples decode to 1-8 elements."""
    import torch

    from matstore.registry import load_model

    s = load_model(store, ref).sample(512, torch.Generator().manual_seed(0), "cpu").numpy()
    fourth = np.sort(s.reshape(len(s), -1), axis=1)[:, -4]
    return float(1 - np.median(fourth))


def kill_generate_then_resume(store: Store, model: str, n: int, batch_size: int, seed: int,
                              after_run: int, extra: tuple[str, ...] = (), min_batches: int = 3):
    """Start `matstore generate` in a subprocess, SIGKILL it once min_batches batches of its run
    are committed (reading the store between its batches), then `generate --resume` the run.
    Returns (run_id, batches committed at the kill, the resume's CompletedProcess)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "matstore.cli", "generate", "--db", str(store.path), "--model", model,
           "-n", str(n), "--batch-size", str(batch_size), "--seed", str(seed), "--device", "cpu",
           "--no-progress", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run_id, committed, deadline = None, 0, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            df = store.query("SELECT r.run_id, count(b.batch_no) AS n FROM runs r LEFT JOIN run_batches b "
                             "USING (run_id) WHERE r.run_id > ? AND r.kind = 'generate' GROUP BY 1",
                             [after_run])
            if df.height:
                run_id, committed = int(df["run_id"][0]), int(df["n"][0])
                if committed >= min_batches:
                    break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0].decode()
    assert run_id is not None and min_batches <= committed < -(-n // batch_size), out
    res = subprocess.run([sys.executable, "-m", "matstore.cli", "generate", "--db", str(store.path),
                          "--resume", str(run_id), "--no-progress"], env=env, capture_output=True,
                         text=True, timeout=300)
    return run_id, committed, res


def mp_template(tmp_path_factory, read_formulas, n: int) -> Path:
    """A store of n real MP compositions with formation energies, made once per module: tests
    take copies (copy_store)."""
    store = new_store(tmp_path_factory.mktemp("small") / "s.duckdb")
    formulas, values = mp_formulas(read_formulas, n)
    load_compositions(store, formulas, "mp", values)
    return Path(store.path)


def forge_ipc(data: bytes, **cols) -> bytes:
    """A worker's Arrow IPC result with some columns replaced (what a hostile worker could send)."""
    import pyarrow as pa

    from matstore.executor.payloads import encode

    t = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    for name, arr in cols.items():
        t = t.set_column(t.column_names.index(name), name, arr)
    return encode(t)
