"""The runner's fused after-generator stages (runner.Stages) write exactly what the separate
commands (validate_store, featurize_store, predict) write for the run's compositions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matstore import runner
from matstore import stages as stages_mod
from matstore.featurize import featurize_store, validate_store
from matstore.predict import predict
from _runner_helpers import ReplayGenerator, trained_store

RUN_COMPS = "composition_id IN (SELECT composition_id FROM generated WHERE run_id = {})"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, read_formulas):
    store, formulas, models = trained_store(tmp_path_factory, read_formulas, "stages", cnn=True)
    return store, formulas, [m.ref for m in models]


def _rows(store):
    v = store.query("SELECT * EXCLUDE (checker_version) FROM validity ORDER BY composition_id")
    f = store.query("SELECT composition_id, featurizer, version, vector FROM features "
                    "ORDER BY featurizer, composition_id")
    p = store.query("SELECT composition_id, model_id, property, value FROM predictions "
                    "ORDER BY model_id, composition_id")
    return v, f, p


def _clear(store):
    with store.transaction() as con:
        for t in ("validity", "features", "predictions"):
            con.execute(f"DELETE FROM {t}")


def test_fused_stages_equal_separate_commands(trained):
    store, formulas, models = trained
    _clear(store)
    gen = ReplayGenerator(formulas)
    sep = runner.generate(store, gen, 4000, batch_size=900, seed=4, device="cpu", progress=False)
    assert sep.written is None
    where = RUN_COMPS.format(sep.run_id)
    validate_store(store, where=where, progress=False)
    for name in ("magpie", "fractions"):
        featurize_store(store, name, where=where, progress=False)
    for m in models:
        predict(store, m, where=where, device="cpu", progress=False)
    want = _rows(store)
    _clear(store)
    stages = runner.Stages(validate=True, featurize=("magpie", "fractions"), predict=tuple(models))
    fused = runner.generate(store, gen, 4000, batch_size=900, seed=4, device="cpu", progress=False,
                            stages=stages)
    got = _rows(store)
    n = store.query(f"SELECT count(DISTINCT composition_id) n FROM generated WHERE run_id = {fused.run_id}")["n"][0]
    assert want[0].height == n and fused.written == {"validity": n, "features": 2 * n, "predictions": 2 * n}
    assert got[0].equals(want[0])                       # validity flags (NULLs included)
    assert got[1].equals(want[1])                       # feature vectors, bit for bit
    gp, wp = got[2], want[2]
    assert gp.select("composition_id", "model_id", "property").equals(
        wp.select("composition_id", "model_id", "property"))
    g, w = gp["value"].to_numpy(), wp["value"].to_numpy()
    assert np.array_equal(np.isnan(g), np.isnan(w))
    rf_id = store.query(f"SELECT model_id FROM model_versions WHERE name || '@' || version = '{models[0]}'")[0, 0]
    rf = (gp["model_id"] == rf_id).to_numpy()
    assert np.array_equal(g[rf], w[rf])                 # the forest: identical
    assert np.allclose(g[~rf], w[~rf], rtol=1e-5, atol=1e-6, equal_nan=True)   # CNN batches differ
    assert store.query("SELECT DISTINCT run_id FROM predictions")["run_id"].to_list() == [fused.run_id]


def test_fused_resume_and_rerun_write_each_row_once(trained):
    store, formulas, models = trained
    _clear(store)
    stages = runner.Stages(validate=True, featurize=("magpie",), predict=(models[0],))
    with pytest.raises(KeyboardInterrupt):
        runner.generate(store, ReplayGenerator(formulas, fail_after=2), 3000, batch_size=500,
                        seed=9, device="cpu", progress=False, stages=stages)
    run_id = store.query("SELECT max(run_id) r FROM runs WHERE kind = 'generate'")["r"][0]
    runner.resume(store, run_id, device="cpu", progress=False, model=ReplayGenerator(formulas))
    # a second run over the same compositions finds every stage done
    again = runner.generate(store, ReplayGenerator(formulas), 3000, batch_size=500, seed=9,
                            device="cpu", progress=False, stages=stages)
    assert again.written == {"validity": 0, "features": 0, "predictions": 0}
    n = store.query(f"SELECT count(DISTINCT composition_id) n FROM generated WHERE run_id = {run_id}")["n"][0]
    for t, key in (("validity", "composition_id"), ("features", "composition_id"),
                   ("predictions", "composition_id")):
        c = store.query(f"SELECT count(*) rows, count(DISTINCT {key}) keys FROM {t}")
        assert c["rows"][0] == c["keys"][0] == n, t


def test_buffered_rows_lost_to_a_kill_come_back_on_resume(trained, monkeypatch):
    """Stage rows are written in row-group-sized chunks; rows a SIGKILL took from the buffer
    (simulated: deleted after an interrupt) are recomputed by resume, once each."""
    store, formulas, models = trained
    stages = runner.Stages(validate=True, featurize=("magpie",), predict=(models[0],))
    _clear(store)
    clean = runner.generate(store, ReplayGenerator(formulas), 3000, batch_size=500, seed=11,
                            device="cpu", progress=False, stages=stages)
    want = _rows(store)
    _clear(store)
    monkeypatch.setattr(stages_mod, "FLUSH_ROWS", 400)    # flush every batch or two, as a long run would
    with pytest.raises(KeyboardInterrupt):
        runner.generate(store, ReplayGenerator(formulas, fail_after=3), 3000, batch_size=500,
                        seed=11, device="cpu", progress=False, stages=stages)
    run_id = store.query("SELECT max(run_id) r FROM runs WHERE kind = 'generate'")["r"][0]
    lost = f"composition_id IN (SELECT composition_id FROM generated WHERE run_id = {run_id} AND batch_no = 2)"
    with store.transaction() as con:      # the last flush never happened
        for t in ("validity", "features", "predictions"):
            con.execute(f"DELETE FROM {t} WHERE {lost}")
    runner.resume(store, run_id, device="cpu", progress=False, model=ReplayGenerator(formulas))
    got = _rows(store)
    assert got[0].equals(want[0]) and got[1].equals(want[1])
    assert got[2].select("composition_id", "value").equals(want[2].select("composition_id", "value"))
    assert store.query("SELECT count(*) n FROM predictions")["n"][0] == clean.written["predictions"]


def test_stages_refuse_a_generator_as_predictor(trained):
    st, formulas, _ = trained
    with pytest.raises(runner.RunError, match="not a property predictor"):
        runner.generate(st, ReplayGenerator(formulas), 10, device="cpu", progress=False,
                        stages=runner.Stages(predict=(ReplayGenerator(formulas),)))


def test_cli_generate_stage_flags_fail_cleanly(trained):
    from click.testing import CliRunner

    from matstore.cli import main

    store, _, models = trained
    out = CliRunner().invoke(main, ["generate", "--db", store.path, "--model", models[0], "-n", "10",
                                    "--validate", "--predict", models[0]])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "not a generator" in out.output
