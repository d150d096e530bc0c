"""The composition transformer (issue 14, item 4): tokens in electronegativity order, teacher
forcing that learns, samples that are compositions, runs that are a pure function of (version,
seed, batch number) through the same runner as the GAN, and kill -9 + resume."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from matstore import models, runner
from matstore.compositions import CompositionBatch
from matstore.compositions.elements import SORT_X, SYMBOLS, Z_OF
from matstore.models.transformer import BOS, EOS, FIRST, PAD, TransformerConfig
from matstore.registry import get_record, load_model
from matstore.training import train

from _runner_helpers import kill_generate_then_resume, load_compositions, mp_formulas
from _store_data import new_store

SMALL = {"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small matrices: 1 thread is fastest, and a loaded 2-core box stalls torch's thread pool."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, read_formulas):
    """1,500 real MP compositions and a small transformer trained on them for 2 epochs."""
    store = new_store(tmp_path_factory.mktemp("transformer") / "t.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "mp", values)
    mv = train(store, "transformer-mp", epochs=2, config=SMALL, device="cpu", progress=False)
    return store, mv, formulas


def test_tokens_follow_pymatgen_order_and_round_trip(read_formulas):
    formulas = read_formulas("mp/e_form.csv")["formula"].to_list()[:400]
    batch = CompositionBatch.from_formulas(formulas)
    m = models.build("transformer", TransformerConfig(**SMALL))
    tok, ok = m.encode(batch.z, batch.counts)
    cfg = m.config
    # the order is pymatgen's formula order: electronegativity, then symbol
    x = [SORT_X[Z_OF[s]] for s in cfg.order]
    assert all((a, s) <= (b, t) for (a, s), (b, t) in zip(zip(x, cfg.order), zip(x[1:], cfg.order[1:])))
    for i in np.flatnonzero(ok)[:200]:
        row = tok[i]
        assert row[0] == BOS
        body = row[1:list(row).index(EOS)]
        ranks = (body - FIRST) // cfg.max_count
        assert list(ranks) == sorted(ranks) and len(set(ranks)) == len(ranks)
        got = {cfg.order[r]: int(c) for r, c in zip(ranks, (body - FIRST) % cfg.max_count + 1)}
        want = {SYMBOLS[z]: int(c) for z, c in zip(batch.z[i], batch.counts[i]) if z}
        assert got == want
        assert (row[1 + len(body) + 1:] == PAD).all()
    # counts above 8 (the one-hot's limit) are not encodable
    big = (batch.counts > cfg.max_count).any(1)
    assert big.any() and not ok[big].any() and ok[~big].all()


def test_teacher_forcing_learns_and_samples_are_ordered_compositions(trained):
    store, mv, _ = trained
    hist = mv.metrics["history"]
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    assert mv.metrics["sample"]["decodable_pct"] == 100.0
    loaded = load_model(store, mv.ref)
    z, counts = loaded.sample(2000, torch.Generator().manual_seed(3), "cpu")
    present = z > 0
    assert present[:, 0].all() and ((counts > 0) == present).all() and counts.max() <= 8
    rank = {Z_OF[s]: i for i, s in enumerate(loaded.config.order)}
    for zz in z[:500]:
        r = [rank[v] for v in zz if v]
        assert r == sorted(r) and len(set(r)) == len(r)    # canonical order, no repeats


def test_sampling_is_a_pure_function_of_seed_and_honours_temperature_and_top_p(trained):
    store, mv, _ = trained
    m = load_model(store, mv.ref).module
    a = m.sample(3000, torch.Generator().manual_seed(5))
    b = m.sample(3000, torch.Generator().manual_seed(5))
    c = m.sample(3000, torch.Generator().manual_seed(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    # a cold, narrow nucleus concentrates the draws: fewer distinct compositions
    cold = m.sample(3000, torch.Generator().manual_seed(5), temperature=0.5, top_p=0.5)
    distinct = lambda s: len({tuple(r) for r in np.concatenate(s, 1)})   # noqa: E731
    assert distinct(cold) < distinct(a)


def test_runs_are_deterministic_per_version_seed_and_batch(trained):
    store, mv, _ = trained
    runs = [runner.generate(store, mv.ref, 3000, batch_size=1000, seed=s, device="cpu",
                            progress=False) for s in (11, 11, 12)]
    q = "SELECT batch_no, sample_no, composition_id FROM generated WHERE run_id = ? ORDER BY sample_no"
    a, b, c = (store.query(q, [r.run_id]) for r in runs)
    assert runs[0].n_decodable == 3000 and a.height == 3000
    assert a.equals(b) and not a.equals(c)
    # batch 2 of the run is the model's sample from batch_seed(11, 2) alone
    loaded = load_model(store, mv.ref)
    z, counts = loaded.sample(1000, torch.Generator().manual_seed(runner.batch_seed(11, 2)), "cpu")
    direct = loaded.decode((z, counts), None, 2, 2000)
    got = a.filter(pl.col("batch_no") == 2)
    assert direct.keys.tolist() == got["composition_id"].to_list()
    assert direct.sample_no.tolist() == got["sample_no"].to_list() == list(range(2000, 3000))


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(trained):
    store, mv, _ = trained
    n, bs = 500 * 60, 500   # the kill comes after 3 batches: 57 left are seconds of margin
    full = runner.generate(store, mv.ref, n, batch_size=bs, seed=1, device="cpu", progress=False)
    run_id, _, res = kill_generate_then_resume(store, mv.ref, n, bs, 1, full.run_id)
    assert res.returncode == 0, res.stderr
    q = "SELECT batch_no, sample_no, composition_id FROM generated WHERE run_id = ? ORDER BY sample_no"
    assert store.query(q, [run_id]).equals(store.query(q, [full.run_id]))
    b = store.query("SELECT count(*) AS n, sum(n_samples) AS s FROM run_batches WHERE run_id = ?", [run_id])
    assert b["n"][0] == n // bs and b["s"][0] == n


def test_train_cli_takes_sampling_and_size_settings_as_hyper(trained):
    from click.testing import CliRunner

    from matstore.cli import main

    store, _, _ = trained
    out = CliRunner().invoke(main, ["train", "--db", store.path, "--model", "transformer-mp",
                                    "--name", "t-cli", "--max-rows", "600", "--epochs", "1",
                                    "--hyper", "temperature=0.8", "--hyper", "top_p=0.9",
                                    "--hyper", "d_model=16", "--hyper", "n_heads=2", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert "t-cli@1: 100.0% of 1,000 samples decodable" in out.output
    cfg = load_model(store, "t-cli").config
    assert (cfg.temperature, cfg.top_p, cfg.d_model) == (0.8, 0.9, 16)
    bad = CliRunner().invoke(main, ["train", "--db", store.path, "--model", "transformer-mp",
                                    "--hyper", "top_p=1.5", "--no-progress"])
    assert bad.exit_code != 0 and "top_p" in bad.output


def test_a_runs_temperature_and_top_p_are_recorded_and_a_resume_draws_with_them(trained, monkeypatch):
    store, mv, _ = trained
    q = "SELECT batch_no, sample_no, composition_id FROM generated WHERE run_id = ? ORDER BY sample_no"
    hot = runner.generate(store, mv.ref, 3000, batch_size=1000, seed=4, device="cpu", progress=False,
                          temperature=1.6, top_p=0.95)
    plain = runner.generate(store, mv.ref, 3000, batch_size=1000, seed=4, device="cpu", progress=False)
    params = json.loads(runner.run_status(store, hot.run_id)["params"])
    assert params["sampling"] == {"temperature": 1.6, "top_p": 0.95}
    assert not store.query(q, [hot.run_id]).equals(store.query(q, [plain.run_id]))
    # batch 1 is the module's own draw at that temperature and nucleus
    loaded = load_model(store, mv.ref)
    z, counts = loaded.module.sample(1000, torch.Generator().manual_seed(runner.batch_seed(4, 1)),
                                     temperature=1.6, top_p=0.95)
    got = store.query(q, [hot.run_id]).filter(pl.col("batch_no") == 1)["composition_id"].to_list()
    assert loaded.decode((z, counts), None, 1, 1000).keys.tolist() == got

    real = runner.write_batch

    def fail_at_2(con, run_id, batch, new_rows, seconds):
        if batch.batch_no == 2:
            raise OSError("disk full (simulated)")
        return real(con, run_id, batch, new_rows, seconds)

    monkeypatch.setattr(runner, "write_batch", fail_at_2)
    with pytest.raises(OSError):
        runner.generate(store, mv.ref, 3000, batch_size=1000, seed=4, device="cpu", progress=False,
                        temperature=1.6, top_p=0.95)
    monkeypatch.setattr(runner, "write_batch", real)
    broken = store.query("SELECT max(run_id) AS r FROM runs")["r"][0]
    runner.resume(store, broken, device="cpu", progress=False)
    assert store.query(q, [broken]).equals(store.query(q, [hot.run_id]))


def test_sampling_settings_are_checked_and_refused_for_a_gan(trained, tmp_path, read_formulas):
    from click.testing import CliRunner

    from matstore.cli import main
    from matstore.errors import MatstoreError

    store, mv, _ = trained
    for bad in ({"temperature": 0.0}, {"temperature": float("nan")}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(MatstoreError, match="temperature|top_p"):
            runner.generate(store, mv.ref, 10, device="cpu", progress=False, **bad)
    out = CliRunner().invoke(main, ["generate", "--db", store.path, "--model", mv.ref, "-n", "10",
                                    "--temperature", "-1", "--no-progress"])
    assert out.exit_code != 0 and "--temperature" in out.output
    gan_store = new_store(tmp_path / "g.duckdb")
    formulas, values = mp_formulas(read_formulas, 300)
    load_compositions(gan_store, formulas, "mp", values)
    gan = train(gan_store, "gan-mp-small", epochs=1, device="cpu", progress=False)
    with pytest.raises(MatstoreError, match="transformer generators"):
        runner.generate(gan_store, gan.ref, 10, device="cpu", progress=False, temperature=1.2)
    assert gan_store.query("SELECT count(*) AS n FROM runs WHERE kind = 'generate'")["n"][0] == 0


def test_valid_only_training_learns_exactly_the_valid_selected_compositions(trained):
    """--valid-only keeps the selected rows the default checker calls charge-neutral and
    electronegativity-balanced (MatGAN's GAN-ICSD-filter): the version's split is exactly that
    set, and it says how many it dropped and under which checker."""
    store, _, formulas = trained
    mv = train(store, "transformer-mp", epochs=1, config=SMALL, device="cpu", progress=False,
               name="t-valid", valid_only=True)
    sets = store.query("SELECT composition_id FROM composition_sets WHERE model_id = ?",
                       [mv.model_id])["composition_id"].to_list()
    flags = store.query("SELECT composition_id, charge_neutral AND electronegativity_balanced AS ok "
                        "FROM composition_validity WHERE composition_id IN "
                        "(SELECT DISTINCT composition_id FROM materials WHERE source = 'mp')")
    selected = store.query("SELECT count(DISTINCT composition_id) AS n FROM materials WHERE source = 'mp'")
    assert flags.height == selected["n"][0]               # every selected row was validated first
    valid = set(flags.filter(pl.col("ok"))["composition_id"].to_list())
    encodable = set(store.query("SELECT composition_id FROM compositions WHERE list_max(counts) <= 8 "
                                "AND n_elements <= 8")["composition_id"].to_list())
    assert set(sets) == valid & encodable and len(sets) == len(set(sets))
    hp = get_record(store, mv.ref, weights=False)["hyperparams"]
    hp = json.loads(hp) if isinstance(hp, str) else hp
    assert hp["valid_only"]["n_not_valid"] == flags.height - len(valid) > 0
    assert hp["valid_only"]["checker_version"] == store.query(
        "SELECT checker_version FROM validity_checkers WHERE is_default")["checker_version"][0]


def test_valid_only_is_refused_for_a_predictor(trained):
    from matstore.training.presets import PresetError

    store, _, _ = trained
    with pytest.raises(PresetError, match="valid-only"):
        train(store, "rf-fe", valid_only=True, progress=False)
