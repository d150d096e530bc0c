"""GAN presets that decode at a CPU budget (gan-mp-small), `train --hyper`, and the low-decodable
warning of `train` (issue 14: 2, 3)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from matstore import runner
from matstore.cli import main
from matstore.training import LOW_DECODABLE_PCT, LowDecodableWarning, train

from _runner_helpers import load_compositions, mp_formulas
from _store_data import new_store


@pytest.fixture(scope="module")
def mp_store(tmp_path_factory, read_formulas):
    store = new_store(tmp_path_factory.mktemp("presets") / "p.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "mp", values)
    return store


def _version(store, model_id):
    row = store.query("SELECT hyperparams, config FROM model_versions WHERE model_id = ?",
                      [model_id]).row(0, named=True)
    return json.loads(row["hyperparams"]), json.loads(row["config"])


def test_gan_mp_small_trains_in_seconds_and_its_samples_decode(mp_store):
    mv = train(mp_store, "gan-mp-small", name="small", epochs=2, max_rows=1200, device="cpu",
               progress=False)
    hp, cfg = _version(mp_store, mv.model_id)
    assert hp["preset"] == "gan-mp-small" and hp["output_bias"] == -4.0 and hp["lr_d"] == 1e-3
    assert cfg["generator"]["latent_dim"] == 32 and cfg["critic"]["convs"][0] == [8, 3, 3, 2, 1]
    assert mv.metrics["sample"]["decodable_pct"] > 0
    run = runner.generate(mp_store, mv.ref, 2000, batch_size=1000, seed=0, device="cpu", progress=False)
    assert run.status == "done" and run.n_decodable > 0
    stored = mp_store.query("SELECT count(*) AS n FROM generated WHERE run_id = ?", [run.run_id])["n"][0]
    assert stored == run.n_decodable


def test_low_decodable_gan_warns_naming_the_preset_to_try(mp_store):
    with pytest.warns(LowDecodableWarning, match=r"0\.0% of 200 samples.*--model gan-mp-small"):
        mv = train(mp_store, "gan-mp", name="dark", epochs=1, max_steps=1, max_rows=200, device="cpu",
                   progress=False, n_eval_samples=200, output_bias=-30.0)
    assert mv.metrics["sample"]["decodable_pct"] < LOW_DECODABLE_PCT
    # and generate from it is refused after its first batches, which stay committed
    with pytest.raises(runner.RunError, match="decode to no composition"):
        runner.generate(mp_store, mv.ref, 3000, batch_size=500, seed=0, device="cpu", progress=False)
    run = mp_store.query("SELECT run_id, status FROM runs ORDER BY run_id DESC LIMIT 1").row(0, named=True)
    assert run["status"] == "failed"
    assert mp_store.query("SELECT count(*) AS n FROM run_batches WHERE run_id = ?",
                          [run["run_id"]])["n"][0] == 2


def test_train_hyper_sets_hyperparameters_and_config_fields_and_refuses_unknown_keys(mp_store):
    db = ["--db", mp_store.path]
    base = ["train", *db, "--model", "gan-mp-small", "--max-rows", "200", "--max-steps", "2",
            "--no-progress"]
    res = CliRunner().invoke(main, [*base, "--name", "tuned", "--epochs", "1", "--hyper", "lr_g=0.002",
                                    "--hyper", "n_eval_samples=100", "--hyper", "generator.latent_dim=16",
                                    "--hyper", "critic.norm=\"none\""])
    assert res.exit_code == 0, res.output
    mid = mp_store.query("SELECT max(model_id) AS m FROM model_versions WHERE name = 'tuned'")["m"][0]
    hp, cfg = _version(mp_store, mid)
    assert hp["lr_g"] == 0.002 and hp["n_eval_samples"] == 100 and hp["epochs"] == 1
    assert hp["lr_d"] == 1e-3                                  # the preset's, untouched
    assert cfg["generator"]["latent_dim"] == 16 and cfg["generator"]["fc_channels"] == 32
    assert cfg["critic"]["norm"] == "none"
    n_versions = mp_store.query("SELECT count(*) AS n FROM model_versions")["n"][0]
    for bad, name in ((["--hyper", "lr_gg=0.1"], "lr_gg"), (["--hyper", "critic.depth=3"], "critic.depth"),
                      (["--hyper", "lr_g"], "lr_g"), (["--epochs", "2", "--hyper", "epochs=3"], "epochs")):
        res = CliRunner().invoke(main, [*base, *bad])
        assert res.exit_code != 0
        assert name in res.output and len(res.output.strip().splitlines()) == 1, res.output
    assert mp_store.query("SELECT count(*) AS n FROM model_versions")["n"][0] == n_versions


def test_train_cli_reports_decodable_and_warns_on_stderr(mp_store):
    res = CliRunner().invoke(main, ["train", "--db", mp_store.path, "--model", "gan-mp-small",
                                    "--name", "dark-cli", "--max-rows", "200", "--epochs", "1",
                                    "--max-steps", "1", "--no-progress", "--hyper", "output_bias=-30",
                                    "--hyper", "n_eval_samples=100"])
    assert res.exit_code == 0, res.output
    assert "warning: train dark-cli@1: only 0.0% of 100 samples" in res.stderr
    assert "train longer" in res.stderr
    assert "0.0% of 100 samples decodable" in res.stderr
