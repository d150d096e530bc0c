"""Issue 10, findings 4 and 11: export --overwrite removes only a previous export; resume with
stages equals a clean run exactly; bad flags (device, counts, tolerance) and a non-store file
given to init are clear errors that change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from matstore.export import ExportError, export_parquet
from matstore.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests/_runner_helpers.py
from _runner_helpers import TINY_GAN, copy_store, decode_tolerance_for, load_compositions, mp_formulas, mp_template  # noqa: E402
from _store_data import new_store


def _cli(*args, cwd=None, env=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "matstore.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def _said(r) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(r.stderr.split())


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_template(tmp_path_factory, read_formulas) -> Path:
    """A store of 300 real MP compositions with formation energies (made once; tests get copies)."""
    return mp_template(tmp_path_factory, read_formulas, 300)


@pytest.fixture
def small(small_template, tmp_path) -> Store:
    """A copy of small_template, alone in its folder."""
    d = tmp_path / "study"
    d.mkdir()
    return copy_store(small_template, d / "s.duckdb")


# --- finding 4: export --overwrite --------------------------------------------------------------
def test_export_overwrite_into_the_store_folder_is_refused_and_removes_nothing(small):
    folder = Path(small.path).parent
    (folder / "notes.txt").write_text("unrelated")
    before = _sha(small.path)
    r = _cli("export", "parquet", ".", "--overwrite", "--db", "s.duckdb", cwd=folder)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "holds the store" in _said(r)
    assert _sha(small.path) == before and (folder / "notes.txt").read_text() == "unrelated"
    assert small.query("SELECT count(*) n FROM compositions")["n"][0] > 250
    # an ancestor of the store's folder too, and without --overwrite as well
    for out in (folder.parent, folder):
        with pytest.raises(ExportError, match="holds the store"):
            export_parquet(small, out, overwrite=True)
    assert _sha(small.path) == before
    assert not list(folder.parent.glob(".*partial*"))


def test_export_overwrite_refuses_a_folder_that_is_not_an_export(small, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("chapter 1")
    (out / "compositions").mkdir()
    (out / "compositions" / "data.parquet").write_bytes(b"not ours")
    with pytest.raises(ExportError, match="not a matstore export"):
        export_parquet(small, out, overwrite=True)
    (out / "manifest.json").write_text(json.dumps({"format": "something-else", "tables": {}}))
    with pytest.raises(ExportError, match="not a matstore export"):
        export_parquet(small, out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "chapter 1"
    assert (out / "compositions" / "data.parquet").read_bytes() == b"not ours"
    r = _cli("export", "parquet", str(out), "--overwrite", "--db", small.path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "not a matstore export" in _said(r)
    assert sorted(p.name for p in out.iterdir()) == ["compositions", "manifest.json", "thesis.tex"]


def test_export_overwrite_replaces_only_the_previous_exports_tables(small, tmp_path):
    out = tmp_path / "exp"
    export_parquet(small, out, tables=["compositions", "materials"])
    (out / "README.md").write_text("what this export is")
    with small.transaction() as con:
        con.execute("DELETE FROM materials WHERE material_id IN (SELECT material_id FROM materials LIMIT 10)")
    summary = export_parquet(small, out, overwrite=True, tables=["materials", "properties"])
    assert (out / "README.md").read_text() == "what this export is"
    # compositions belonged to the previous export: replaced by the new export's tables
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "manifest.json", "materials", "properties"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["tables"]) == {"materials", "properties"}
    n = small.query("SELECT count(*) n FROM materials")["n"][0]
    assert summary.filter(summary["table"] == "materials")["rows"][0] == n == manifest["tables"]["materials"]["rows"]
    import polars as pl

    assert pl.read_parquet(out / "materials" / "data.parquet").height == n
    assert not list(tmp_path.glob(".exp.*"))
    export_parquet(small, tmp_path / "new" / "deeper" / "exp", tables=["runs"])   # parents made
    assert (tmp_path / "new" / "deeper" / "exp" / "manifest.json").is_file()


def test_export_overwrite_refuses_a_forged_or_edited_manifest(small, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.parquet").write_bytes(b"elsewhere")
    out = tmp_path / "exp"
    export_parquet(small, out, tables=["compositions"])
    manifest = json.loads((out / "manifest.json").read_text())
    forged = {**manifest, "tables": {"../victim": {"rows": 0}}}
    (out / "manifest.json").write_text(json.dumps(forged))
    with pytest.raises(ExportError, match="not plain names"):
        export_parquet(small, out, overwrite=True)
    assert (victim / "data.parquet").read_bytes() == b"elsewhere"
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "compositions" / "my_notes.txt").write_text("kept")   # a user's file in a table folder
    with pytest.raises(ExportError, match="my_notes.txt was not written by a matstore export"):
        export_parquet(small, out, overwrite=True)
    assert (out / "compositions" / "my_notes.txt").read_text() == "kept"
    (out / "compositions" / "my_notes.txt").unlink()
    (out / "runs").mkdir()                     # a folder the previous export did not write
    (out / "runs" / "x.txt").write_text("mine")
    with pytest.raises(ExportError, match="not part of its previous export"):
        export_parquet(small, out, overwrite=True, tables=["compositions", "runs"])
    assert (out / "runs" / "x.txt").read_text() == "mine" and (out / "compositions").is_dir()


# --- finding 11: resume with --predict equals a clean run exactly --------------------------------
def _predictions(store):
    return store.query("SELECT composition_id, model_id, property, value FROM predictions "
                       "ORDER BY model_id, composition_id")


@pytest.mark.slow
def test_sigkill_then_resume_with_predict_equals_a_clean_run_exactly(tmp_path, read_formulas):
    from matstore import runner, training

    base = new_store(tmp_path / "base.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(base, formulas, "mp", values)
    gan = training.train(base, "gan-mp", epochs=1, max_steps=2, batch_size=64, config=TINY_GAN,
                         device="cpu", progress=False)
    cnn = training.train(base, "cnn-fe", max_rows=600, epochs=1, device="cpu", progress=False)
    tol = decode_tolerance_for(base, gan.ref)
    shutil.copy(base.path, tmp_path / "killed.duckdb")
    clean, killed = base, Store(tmp_path / "killed.duckdb")
    n, bs = 512 * 40, 512
    full = runner.generate(clean, gan.ref, n, batch_size=bs, seed=3, device="cpu", tolerance=tol,
                           progress=False, stages=runner.Stages(predict=(cnn.ref,)))
    assert full.written["predictions"] > 1000

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "matstore.cli", "generate", "--db", killed.path,
                             "--model", gan.ref, "-n", str(n), "--batch-size", str(bs), "--seed", "3",
                             "--tolerance", repr(tol), "--device", "cpu", "--predict", cnn.ref,
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    committed, deadline = 0, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None and committed < 10:
            time.sleep(0.2)
            committed = killed.query("SELECT count(*) n FROM run_batches")["n"][0]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0].decode()
    run_id = killed.query("SELECT max(run_id) r FROM runs")["r"][0]
    assert 10 <= killed.query("SELECT count(*) n FROM run_batches")["n"][0] < n // bs, out
    r = _cli("generate", "--db", killed.path, "--resume", str(run_id), "--no-progress", env=env,
             timeout=300)
    assert r.returncode == 0, r.stderr
    gen = "SELECT batch_no, sample_no, composition_id FROM generated ORDER BY sample_no"
    assert killed.query(gen).equals(clean.query(gen))
    got, want = _predictions(killed), _predictions(clean)
    assert got.height == want.height == full.written["predictions"]
    assert got.equals(want)                      # ==, bit for bit: not approximately


def test_prediction_of_a_row_does_not_depend_on_the_rows_batched_with_it(tmp_path, read_formulas):
    """The cause of the ~1e-8 resume differences: a forward pass's float reductions depend on the
    batch's shape. Fixed-shape passes make each row's value a function of that row alone."""
    import torch

    from matstore import models
    from matstore.compositions import CompositionBatch
    from matstore.registry import predict_module

    f = read_formulas("oqmd/formation_enthalpy_train.csv")["formula"].to_list()[:3001]
    batch = CompositionBatch.from_formulas(f)
    torch.manual_seed(0)
    for kind, featurizer, cfg in (("cnn", "magpie", {}), ("elemnet", "fractions", {})):
        x = models.featurize(kind, featurizer, batch)
        m = models.build(kind, {**cfg, "n_inputs": x.shape[1]} if kind == "elemnet" else cfg)
        whole = predict_module(m, x, "cpu")
        rng = np.random.default_rng(1)
        for size in (1, 7, 513, 1500, 2999):
            idx = np.sort(rng.choice(len(x), size, replace=False))
            assert np.array_equal(predict_module(m, x[idx], "cpu"), whole[idx]), (kind, size)


@pytest.mark.slow
def test_fused_predictions_equal_the_separate_predict_command_exactly(tmp_path, read_formulas):
    """generate --predict (per-batch passes) and `matstore predict` (one pass over all) write the
    same values, bit for bit, for a neural predictor (they differed by ~1 float32 ulp)."""
    from matstore import runner, training
    from matstore.predict import predict
    from _runner_helpers import ReplayGenerator

    store = new_store(tmp_path / "f.duckdb")
    formulas, values = mp_formulas(read_formulas, 2000)
    load_compositions(store, formulas, "mp", values)
    cnn = training.train(store, "cnn-fe", max_rows=600, epochs=1, device="cpu", progress=False)
    gen = ReplayGenerator(formulas)
    fused = runner.generate(store, gen, 6000, batch_size=700, seed=4, device="cpu", progress=False,
                            stages=runner.Stages(predict=(cnn.ref,)))
    want = _predictions(store)
    assert want.height == fused.written["predictions"] > 1000
    with store.transaction() as con:
        con.execute("DELETE FROM predictions")
    predict(store, cnn.ref, where=f"composition_id IN (SELECT composition_id FROM generated "
                                  f"WHERE run_id = {fused.run_id})", device="cpu", progress=False)
    assert _predictions(store).equals(want)


# --- finding 11: flags that did nothing or crashed -----------------------------------------------
def _no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")


@pytest.mark.slow
def test_device_cuda_without_a_gpu_is_a_clear_error_for_generate_predict_and_train(small):
    _no_gpu()
    from matstore import runner, training
    from matstore.devices import DeviceError, resolve_device
    from matstore.predict import predict

    said = "cuda requested but torch.cuda.is_available() is False"
    for args in (["generate", "--model", "gan", "-n", "10", "--device", "cuda"],
                 ["predict", "--model", "cnn", "--device", "cuda"],
                 ["train", "--model", "cnn-fe", "--device", "cuda:0"]):
        r = _cli(*args, "--db", small.path)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert said in _said(r), (args, r.stderr)
    for call in (lambda: runner.generate(small, "gan", 10, device="cuda"),
                 lambda: predict(small, "cnn", device="cuda", progress=False),
                 lambda: training.train(small, "cnn-fe", device="cuda", progress=False)):
        with pytest.raises(DeviceError, match="cuda requested"):
            call()
    with pytest.raises(DeviceError, match="not a device"):
        resolve_device("gpu0")
    assert resolve_device(None) == resolve_device("auto") == runner.default_device() == "cpu"
    assert small.query("SELECT count(*) n FROM runs")["n"][0] == 0      # nothing was started


@pytest.mark.parametrize("args", [
    ["generate", "--model", "gan", "-n", "-5"],
    ["generate", "--model", "gan", "-n", "100", "--batch-size", "0"],
    ["generate", "--model", "gan", "-n", "100", "--batch-size", "-1"],
    ["generate", "--model", "gan", "-n", "100", "--tolerance", "5"],
    ["generate", "--model", "gan", "-n", "100", "--tolerance", "0"],
    ["generate", "--model", "gan", "-n", "100", "--tolerance", "1"],
    ["predict", "--model", "cnn", "--chunk-size", "-1"],
    ["featurize", "--featurizer", "magpie", "--batch-size", "0"],
    ["validate", "--batch-size", "-3"],
    ["train", "--model", "cnn-fe", "--epochs", "0"],
    ["train", "--model", "cnn-fe", "--batch-size", "-64"],
    ["train", "--model", "cnn-fe", "--max-rows", "0"],
    ["train", "--model", "cnn-fe", "--max-steps", "-1"],
])
def test_cli_refuses_counts_below_one_and_tolerance_outside_0_1(small, args):
    from click.testing import CliRunner

    from matstore.cli import main

    r = CliRunner().invoke(main, [*args, "--db", small.path])
    assert r.exit_code == 2 and "Invalid value" in r.output, r.output     # click's usage error
    assert small.query("SELECT count(*) n FROM runs")["n"][0] == 0


def test_library_refuses_counts_below_one_and_tolerance_outside_0_1(small):
    from matstore import runner, training
    from matstore.featurize import featurize_store, validate_store
    from matstore.errors import MatstoreError
    from matstore.predict import predict

    calls = {
        "number of samples": lambda: runner.generate(small, "gan", -5, device="cpu"),
        "batch size": lambda: runner.generate(small, "gan", 100, batch_size=0, device="cpu"),
        "tolerance": lambda: runner.generate(small, "gan", 100, tolerance=5, device="cpu"),
        "chunk size": lambda: predict(small, "cnn", chunk_size=-1, device="cpu", progress=False),
        "featurize: the batch size": lambda: featurize_store(small, "magpie", batch_size=0, progress=False),
        "validate: the batch size": lambda: validate_store(small, batch_size=-3, progress=False),
        "max_rows": lambda: training.train(small, "cnn-fe", max_rows=0, device="cpu", progress=False),
        "max_steps": lambda: training.train(small, "cnn-fe", max_steps=-1, device="cpu", progress=False),
    }
    for name, call in calls.items():
        with pytest.raises(MatstoreError, match=name):
            call()
    for bad in (0, 1, -0.1, 5, float("nan"), float("inf")):
        with pytest.raises(MatstoreError, match="0 < tolerance < 1"):
            runner.generate(small, "gan", 10, tolerance=bad, device="cpu")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        training.train(small, "cnn-fe", epochs=-1, device="cpu", progress=False)
    counts = small.query("SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM features) f, "
                         "(SELECT count(*) FROM validity) v, (SELECT count(*) FROM model_versions) m")
    assert counts.row(0) == (0, 0, 0, 0)


# --- finding 11: init on a file that is not a store -----------------------------------------------
def test_init_refuses_a_file_that_is_not_a_duckdb_store_and_leaves_it_byte_equal(tmp_path, shared_data):
    from matstore.store import StoreError

    csv = tmp_path / "notdb.csv"
    shutil.copy(shared_data / "expt" / "expt_gap.csv", csv)
    before = _sha(csv)
    r = _cli("init", "notdb.csv", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "notdb.csv is not a DuckDB/matstore store" in _said(r)
    assert "in-memory" not in r.stderr
    assert _sha(csv) == before and sorted(p.name for p in tmp_path.iterdir()) == ["notdb.csv"]
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match="not a DuckDB/matstore store"):
        Store.init(tmp_path / "empty.db")
    assert (tmp_path / "empty.db").read_bytes() == b""


def test_init_refuses_a_duckdb_database_with_tables_of_its_own(tmp_path):
    """Decision: init makes a store of a new file, an empty DuckDB database, or a matstore store
    (upgrade); a DuckDB file with its own tables and no schema_migrations is someone's data."""
    import duckdb

    from matstore.store import StoreError

    theirs = tmp_path / "theirs.duckdb"
    con = duckdb.connect(str(theirs))
    con.execute("CREATE TABLE samples AS SELECT range AS i FROM range(10)")
    con.close()
    before = _sha(theirs)
    with pytest.raises(StoreError, match="tables of its own \\(samples\\)"):
        Store.init(theirs)
    assert _sha(theirs) == before
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert Store.init(empty).version() >= 1                 # an empty database becomes a store
    assert Store.init(empty).version() == Store(empty).version()   # and init again upgrades/keeps it
