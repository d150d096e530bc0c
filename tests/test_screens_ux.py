"""What a user meets on the way (issue 24, point 6): progress off a terminal, band gaps of
metals, predicting a formula without ingesting it, physical outliers at curation."""

from __future__ import annotations

import io

import pytest
from _store_data import new_store


def test_progress_off_a_terminal_prints_periodic_whole_lines(monkeypatch, capsys):
    from matstore import progress

    with progress.bar(True, "compositions") as prog:    # pytest's stderr is not a terminal
        t = prog.add_task("predict rf-fe@1 on a long/path/that/must/not/wrap/" + "x" * 80, total=30)
        for _ in range(3):
            prog.update(t, advance=10)
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l]
    assert lines and lines[-1].startswith("predict rf-fe@1 on a long/path") and "30/30 compositions" in lines[-1]
    assert all(len(l) > 80 for l in lines)        # one unwrapped line, not 80-column pieces
    # periodic: with a zero period every update prints its line
    buf = io.StringIO()
    p = progress.LineProgress("epochs", stream=buf, period=0.0)
    task = p.add_task("train", total=5)
    for _ in range(5):
        p.advance(task)
    assert buf.getvalue().count("\n") == 5 and "5/5 epochs" in buf.getvalue().splitlines()[-1]


def test_status_lines_are_not_wrapped_at_80_columns_off_a_terminal(tmp_path, shared_data):
    from click.testing import CliRunner

    from matstore.cli import main

    deep = tmp_path / ("a-folder-with-a-rather-long-name-" * 3) / "store.duckdb"
    deep.parent.mkdir(parents=True)
    r = CliRunner().invoke(main, ["ingest", "csv", "--db", str(deep), "--file",
                                  str(shared_data / "oqmd" / "formation_enthalpy_train.csv"),
                                  "--limit", "50", "--prop", "formation_energy_per_atom=target:eV/atom"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["stability", "--db", str(deep), "--no-progress"])
    assert r.exit_code == 0, r.output
    line = [l for l in r.output.splitlines() if l.startswith("stability of")]
    assert len(line) == 1 and "reference phases" in line[0] and len(line[0]) > 80


@pytest.mark.slow
def test_an_autoencoder_that_decodes_nothing_warns(tmp_path, read_formulas):
    from matstore import training
    from matstore.store import Store
    from matstore.training import LowDecodableWarning
    from _runner_helpers import load_compositions, mp_formulas

    store = new_store(tmp_path / "ae.duckdb")
    formulas, values = mp_formulas(read_formulas, 400)
    load_compositions(store, formulas, "mp", values)
    with pytest.warns(LowDecodableWarning, match=r"0\.0% of train.*decode back"):
        mv = training.train(store, "ae", max_steps=1, progress=False)
    assert mv.metrics["train"]["decodable_pct"] < training.LOW_DECODABLE_PCT
    assert store.query("SELECT count(*) AS n FROM model_versions")["n"][0] == 1   # saved all the same


def test_predict_a_formula_without_ingesting_it(tmp_path, read_formulas):
    import numpy as np
    from click.testing import CliRunner

    from matstore import training
    from matstore.cli import main
    from matstore.compositions import CompositionBatch, parse
    from matstore.registry import load_model
    from matstore.store import Store
    from _runner_helpers import load_compositions, mp_formulas

    path = tmp_path / "p.duckdb"
    store = new_store(path)
    formulas, values = mp_formulas(read_formulas, 600)
    load_compositions(store, formulas, "mp", values)
    mv = training.train(store, "rf-fe", max_rows=500, config={"n_estimators": 5, "n_jobs": 1}, progress=False)
    before = store.query("SELECT (SELECT count(*) FROM compositions) AS c, (SELECT count(*) FROM predictions) AS p")
    r = CliRunner().invoke(main, ["predict", "--db", str(path), "--model", mv.ref, "--formula", "Cu2ZnSnS4",
                                  "--formula", formulas[0], "--csv"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].startswith("formula,composition,property,value") and len(lines) == 3
    assert lines[1].startswith(f"Cu2ZnSnS4,{parse('Cu2ZnSnS4').formula},formation_energy_per_atom,")
    c = parse("Cu2ZnSnS4")
    expect = load_model(store, mv.ref).predict(
        CompositionBatch.from_lists([list(c.elements)], [list(c.counts)], [c.composition_id]), device="cpu")[0]
    assert float(lines[1].split(",")[3]) == pytest.approx(float(expect))
    assert store.query("SELECT (SELECT count(*) FROM compositions) AS c, "
                       "(SELECT count(*) FROM predictions) AS p").equals(before)   # nothing stored
    bad = CliRunner().invoke(main, ["predict", "--db", str(path), "--model", mv.ref, "--formula", "Xx2O"])
    assert bad.exit_code == 1 and "Xx2O" in bad.output


def test_band_gap_is_zero_where_p_metal_is_at_least_half(store, read_formulas):
    import datetime as dt

    import numpy as np
    import polars as pl

    from matstore import runner
    from matstore.store import append
    from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas

    formulas, values = mp_formulas(read_formulas, 400)
    load_compositions(store, formulas[:100], "mp", values[:100])
    res = runner.generate(store, ReplayGenerator(formulas[100:400]), 600, batch_size=300, seed=1, device="cpu",
                          progress=False, stages=runner.Stages(validate=True))
    with store.transaction() as con:
        con.execute("INSERT INTO model_versions (name, version, kind, created_at) VALUES ('bg-two-stage', 1, 'rf', ?)",
                    [dt.datetime.now()])
        mid = con.execute("SELECT max(model_id) FROM model_versions").fetchone()[0]
    ids = store.query("SELECT DISTINCT composition_id FROM generated WHERE run_id = ? ORDER BY 1",
                      [res.run_id])["composition_id"].to_numpy()
    rng = np.random.default_rng(3)
    p_metal = rng.uniform(0.3, 0.7, len(ids))   # an ensemble's mean: members' gaps 0 or not
    value = rng.uniform(0.5, 2.0, len(ids))
    with store.transaction() as con:
        append(con, "predictions", pl.DataFrame(
            {"composition_id": ids, "model_id": mid, "run_id": 1, "property": "band_gap", "value": value,
             "p_metal": p_metal}, schema_overrides={"model_id": pl.Int32, "run_id": pl.Int32}))
    got = store.query("SELECT composition_id, pred_band_gap, pred_band_gap_p_metal FROM candidates "
                      "WHERE pred_band_gap_p_metal IS NOT NULL ORDER BY composition_id")
    assert got.height == len(ids)
    expect = np.where(p_metal >= 0.5, 0.0, value)
    assert np.allclose(got["pred_band_gap"].to_numpy(), expect)
    assert ((p_metal >= 0.5).sum() > 50) and ((p_metal < 0.5).sum() > 50)


def test_curation_flags_physical_outlier_formation_energies(tmp_path, read_formulas):
    import polars as pl
    from click.testing import CliRunner

    from matstore.cli import main
    from matstore.store import Store

    df = read_formulas("oqmd/formation_enthalpy_train.csv")
    outliers = df.filter(pl.col("target").abs() > 5)
    assert outliers.height >= 10 and outliers["target"].max() > 40     # U2PaCu 43 eV/atom
    sample = pl.concat([df.head(300), outliers])
    sample.write_csv(tmp_path / "fe.csv")
    path = tmp_path / "o.duckdb"
    r = CliRunner().invoke(main, ["ingest", "csv", "--db", str(path), "--file", str(tmp_path / "fe.csv"),
                                  "--prop", "formation_energy_per_atom=target:eV/atom", "--no-progress"])
    assert r.exit_code == 0, r.output
    n = Store(path).query("SELECT count(*) AS n FROM physical_outliers")["n"][0]
    expect = Store(path).query("SELECT count(*) AS n FROM properties WHERE abs(value) > 5")["n"][0]
    assert n == expect >= 10
    assert f"{n} flagged (fe_physical_outliers {n})" in r.output


@pytest.mark.slow
def test_al_step_says_what_it_is_doing(tmp_path, shared_data):
    import torch
    from click.testing import CliRunner

    from matstore import training
    from matstore.cli import main
    from matstore.ingest import run
    from matstore.store import Store

    torch.set_num_threads(1)
    path = tmp_path / "al.duckdb"
    store = new_store(path)
    run(store, "mp", file=str(shared_data / "mp" / "gap.csv"), props=["band_gap=target:eV"], limit=1500)
    small = {"latent_dim": 16,
             "encoder": {"convs": [[8, 3, 3, 2, 1], [16, 3, 3, 2, 1], [16, 3, 3, 2, 1], [32, 5, 5, 2, 2]],
                         "norm": "batch"},
             "decoder": {"latent_dim": 16, "fc_channels": 32,
                         "deconvs": [[16, 5, 5, 2, 2], [16, 3, 3, 2, 1], [8, 3, 3, 2, 1], [1, 3, 3, 2, 1]]}}
    training.train(store, "ae", name="ae-t", epochs=3, batch_size=64, lr=3e-3, config=small,
                   progress=False, device="cpu", seed=0)
    training.train(store, "rf-bg", name="oracle-t", progress=False, seed=0, n_jobs=1, config={"n_estimators": 5})
    db = str(path)
    r = CliRunner().invoke(main, ["al", "start", "--db", db, "--autoencoder", "ae-t", "--oracle", "model:oracle-t",
                                  "--base-rows", "100", "--batch-size", "10", "--candidates", "300"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["al", "step", "1", "--db", db])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    fit = [i for i, l in enumerate(lines) if "fitting the" in l and "surrogate" in l]
    oracle = [i for i, l in enumerate(lines) if "oracle labels" in l]
    done = [i for i, l in enumerate(lines) if "round 1: proposed" in l]
    assert fit and oracle and done and fit[0] < oracle[0] < done[0], r.output
    quiet = CliRunner().invoke(main, ["al", "step", "1", "--db", db, "--no-progress"])
    assert quiet.exit_code == 0 and "fitting the" not in quiet.output


def test_quality_and_report_say_what_they_are_doing_off_a_terminal(tmp_path, read_formulas):
    from click.testing import CliRunner

    from matstore import runner
    from matstore.cli import main
    from matstore.store import Store
    from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas

    path = tmp_path / "q.duckdb"
    store = new_store(path)
    formulas, values = mp_formulas(read_formulas, 300)
    load_compositions(store, formulas[:200], "mp", values[:200])
    runner.generate(store, ReplayGenerator(formulas), 400, batch_size=200, seed=1, device="cpu",
                    progress=False, stages=runner.Stages(validate=True))
    q = CliRunner().invoke(main, ["quality", "--db", str(path), "--csv"])
    assert q.exit_code == 0, q.output
    assert "quality: measuring run 1 (1 of 1)" in q.output
    r = CliRunner().invoke(main, ["report", "--db", str(path), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    steps = [i for i, l in enumerate(lines) if l.startswith("report: ")]
    assert len(steps) == 2 and "reading run 1" in lines[steps[0]] and "drawing the plots" in lines[steps[1]]
    assert steps[-1] < [i for i, l in enumerate(lines) if l.startswith("report written to")][0]


def test_train_prints_a_line_per_epoch_off_a_terminal(tmp_path, read_formulas, monkeypatch):
    from click.testing import CliRunner

    from matstore import progress
    from matstore.cli import main
    from matstore.store import Store
    from _runner_helpers import load_compositions, mp_formulas

    # every epoch's line, not one per progress.PERIOD (30 s)
    monkeypatch.setattr(progress.LineProgress.__init__, "__defaults__", (None, 0.0))
    path = tmp_path / "t.duckdb"
    formulas, values = mp_formulas(read_formulas, 300)
    load_compositions(new_store(path), formulas, "mp", values)
    r = CliRunner().invoke(main, ["train", "--db", str(path), "--model", "elemnet-magpie-fe", "--epochs", "3",
                                  "--batch-size", "64"])
    assert r.exit_code == 0, r.output
    epochs = [l for l in r.output.splitlines() if l.startswith("train elemnet-magpie-fe") and " epochs, " in l]
    # one whole line per epoch, before the saved line (a live bar off a terminal prints only at its end)
    assert [l.split(": ")[-1].split(" epochs")[0] for l in epochs] == ["1/3", "2/3", "3/3"], r.output
    saved = [i for i, l in enumerate(r.output.splitlines()) if l.startswith("saved elemnet-magpie-fe@1")]
    assert saved and r.output.splitlines().index(epochs[-1]) < saved[0]
