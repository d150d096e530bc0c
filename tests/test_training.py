"""Tiny training runs on real data (a few hundred rows, a few steps, CPU) write model versions
that load back and predict identically; metrics agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from _store_data import fill, new_store
from matstore.compositions import CompositionBatch
from matstore.registry import load_model
from matstore.training import data, train
from matstore.models.loops import regression_metrics
from matstore.training.sample_metrics import generation_metrics

# one intra-op thread: on a shared 2-core CI box, 2 contending threads run ~10x slower
torch.set_num_threads(1)

N = 300


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, read_formulas):
    store = new_store(tmp_path_factory.mktemp("train") / "t.duckdb")
    fe = read_formulas("oqmd/formation_enthalpy_train.csv").head(N)
    bg = read_formulas("oqmd/bandgap_train.csv").head(N)
    fill(store, "oqmd", fe, "formation_energy_per_atom", ingest_id=1)
    fill(store, "oqmd", bg, "band_gap", unit="eV", ingest_id=2)
    icsd = read_formulas("matgan/gan_icsd_generated_1024.csv").head(200)
    fill(store, "icsd", icsd, None, ingest_id=3)
    return store


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=200), rng.normal(size=200)
    m = regression_metrics(y, p)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert m["r2"] == pytest.approx(r2_score(y, p))


def test_split_is_seeded_and_disjoint():
    a, b, c = data.split(100, seed=1), data.split(100, seed=1), data.split(100, seed=2)
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)
    allidx = np.concatenate([a.train, a.val, a.test])
    assert sorted(allidx) == list(range(100)) and (len(a.val), len(a.test)) == (10, 10)


def test_load_uses_ground_state_and_hash(small_store):
    ds = data.load(small_store, "SELECT composition_id FROM compositions", "formation_energy_per_atom")
    truth = small_store.query("SELECT composition_id, min(value) AS v FROM properties "
                              "WHERE name = 'formation_energy_per_atom' GROUP BY 1 ORDER BY 1")
    assert np.array_equal(ds.batch.composition_id, truth["composition_id"].to_numpy())
    assert np.allclose(ds.y, truth["v"].to_numpy())
    again = data.load(small_store, "SELECT composition_id FROM compositions", "formation_energy_per_atom")
    assert again.data_hash == ds.data_hash
    sub = data.load(small_store, "SELECT composition_id FROM compositions", "formation_energy_per_atom",
                    max_rows=50, seed=3)
    assert len(sub) == 50 and sub.data_hash != ds.data_hash


def test_bad_selection_is_a_clear_error(small_store):
    with pytest.raises(ValueError, match="composition_id"):
        data.load(small_store, "SELECT 1 AS x", None)
    with pytest.raises(ValueError, match="returned no compositions"):
        data.load(small_store, "SELECT composition_id FROM compositions WHERE false", None)
    with pytest.raises(ValueError, match="unknown preset"):
        train(small_store, "gan-xyz")


@pytest.mark.parametrize("preset", ["cnn-fe", "elemnet-fe", "elemnet-magpie-fe", "rf-bg"])
def test_tiny_predictor_round_trip(small_store, preset):
    kw = dict(n_jobs=1) if preset.startswith("rf") else dict(max_steps=6, batch_size=64)
    mv = train(small_store, preset, epochs=3, device="cpu", seed=0, progress=False, **kw)
    rec = small_store.query(f"SELECT * FROM model_versions WHERE model_id = {mv.model_id}").to_dicts()[0]
    n_comp = small_store.query("SELECT count(*) AS n FROM composition_sets WHERE model_id = "
                               f"{mv.model_id}")["n"][0]
    assert rec["training_rows"] == n_comp > 200 and rec["data_hash"] and rec["weights_sha256"]
    loaded = load_model(small_store, preset)
    assert loaded.version == mv.version and loaded.property in ("formation_energy_per_atom", "band_gap")
    # predictions of the reloaded model equal the test metrics recorded at training time
    test_ids = small_store.query(
        f"SELECT s.composition_id, c.elements, c.counts, p.{loaded.property} AS y FROM composition_sets s "
        f"JOIN compositions c USING (composition_id) JOIN composition_properties p USING (composition_id) "
        f"WHERE s.set_name = '{preset}@{mv.version}/test' ORDER BY s.composition_id")
    batch = CompositionBatch.from_lists(test_ids["elements"].to_list(), test_ids["counts"].to_list())
    pred = loaded.predict(batch)
    assert pred.shape == (len(batch),) and np.isfinite(pred).all()
    m = regression_metrics(test_ids["y"].to_numpy(), pred)
    assert m["mae"] == pytest.approx(mv.metrics["test"]["mae"], rel=1e-5)
    assert np.array_equal(pred, load_model(small_store, f"{preset}@{mv.version}").predict(batch))


def test_tiny_gan_round_trip(small_store):
    mv = train(small_store, "gan-icsd", epochs=2, device="cpu", seed=0, max_steps=3, max_rows=120,
               progress=False, n_eval_samples=100)
    s = mv.metrics["sample"]
    assert s["n_samples"] == 100
    n_ok = round(s["decodable_pct"] * s["n_samples"] / 100)       # decodable samples, a whole number
    assert n_ok * 100 / s["n_samples"] == pytest.approx(s["decodable_pct"])
    assert s["uniqueness_pct"] == pytest.approx(100 * s["n_unique"] / n_ok if n_ok else 0.0)
    assert s["n_unique"] <= n_ok
    rec = small_store.query(f"SELECT split, hyperparams FROM model_versions WHERE model_id = {mv.model_id}")
    assert '"n_train"' in rec["split"][0] and '"gp_lambda": 10.0' in rec["hyperparams"][0]
    g = load_model(small_store, mv.model_id)
    assert g.kind == "wgan" and g.latent_dim == 128
    a = g.sample(16, torch.Generator().manual_seed(5), "cpu")
    b = load_model(small_store, "gan-icsd").sample(16, torch.Generator().manual_seed(5), "cpu")
    assert a.shape == (16, 8, 85) and torch.equal(a, b)


def test_weight_clipping_option(small_store):
    mv = train(small_store, "gan-icsd", name="gan-icsd-clip", epochs=1, device="cpu", max_steps=2,
               max_rows=60, progress=False, clip=0.01, n_eval_samples=20)
    g = load_model(small_store, "gan-icsd-clip")
    assert max(float(p.abs().max()) for p in g.module.critic.parameters()) <= 0.01 + 1e-9
    assert mv.version == 1


def test_tiny_autoencoder(small_store):
    mv = train(small_store, "ae", epochs=2, max_steps=2, batch_size=16, max_rows=40, device="cpu",
               progress=False)
    t = mv.metrics["test"]
    assert t["n"] > 0
    n_ok = round(t["decodable_pct"] * t["n"] / 100)    # a share of whole test rows
    assert n_ok * 100 / t["n"] == pytest.approx(t["decodable_pct"]) and n_ok <= t["n"]
    ae = load_model(small_store, "ae")
    x = torch.zeros(2, 8, 85)
    assert ae.module(x).shape == (2, 8, 85) and ae.sample(3, None, "cpu").shape == (3, 8, 85)


def test_generation_metrics_on_real_matgan_samples(read_formulas):
    from matstore.features import onehot

    f = read_formulas("matgan/gan_icsd_generated_1024.csv")["formula"].to_list()[:400]
    batch = CompositionBatch.from_formulas(f)
    maps, ok = onehot.encode(batch)
    maps = np.concatenate([maps[ok], maps[ok][:50]])  # 50 duplicates
    ids = batch.composition_id[ok]
    m = generation_metrics(maps, train_ids=ids[:50], leave_out_ids=ids[50:60])
    n_unique = len(np.unique(ids))
    assert m["decodable_pct"] == 100 and m["n_unique"] == n_unique
    assert m["uniqueness_pct"] == pytest.approx(100 * n_unique / len(maps))
    assert m["novelty_pct"] == pytest.approx(100 * (n_unique - len(np.unique(ids[:50]))) / n_unique)
    assert m["recovery_pct"] == 100
    # validity = SMACT charge neutrality + electronegativity (no alloy shortcut) on the same maps
    from smact.screening import smact_validity

    from matstore.compositions import from_arrays
    z, c, _ = onehot.decode(maps)
    ref = np.mean([smact_validity(from_arrays(z[i], c[i]).formula, include_alloys=False)
                   for i in range(len(maps))])
    assert m["validity_pct"] == pytest.approx(100 * ref, abs=0.5)


@pytest.mark.slow
def test_gan_training_is_reproducible_whatever_the_threads_and_global_rng(small_store):
    """Same seed -> bit-identical weights, though the caller's thread count and global RNG differ
    (CPU conv gradients depend on the thread count; a GAN turns that into another model)."""
    from matstore.training.presets import SMALL_GAN_CONFIG

    kw = dict(epochs=2, device="cpu", seed=3, max_steps=4, max_rows=150, batch_size=16,
              progress=False, n_eval_samples=50, config=SMALL_GAN_CONFIG)
    shas = []
    for name, threads in (("gan-repro-a", 1), ("gan-repro-b", 2)):
        torch.set_num_threads(threads)
        torch.rand(threads * 7)  # moves the global RNG differently before each run
        try:
            mv = train(small_store, "gan-icsd", name=name, **kw)
        finally:
            after = torch.get_num_threads()
            torch.set_num_threads(1)
        assert after == threads  # the training's fixed thread count is not left behind
        shas.append(small_store.query(f"SELECT weights_sha256 AS s, hyperparams FROM model_versions "
                                      f"WHERE model_id = {mv.model_id}").row(0, named=True))
    assert shas[0]["s"] == shas[1]["s"]
    assert '"threads": 1' in shas[0]["hyperparams"]
    # and the seed matters: another seed gives other weights
    other = train(small_store, "gan-icsd", name="gan-repro-c", **{**kw, "seed": 4})
    sha_c = small_store.query(f"SELECT weights_sha256 AS s FROM model_versions WHERE model_id = {other.model_id}")
    assert sha_c["s"][0] != shas[0]["s"]


def test_gan_output_bias_starts_the_generator_below_the_decode_threshold(small_store):
    from matstore.features import onehot
    from matstore.training.presets import SMALL_GAN_CONFIG

    mv = train(small_store, "gan-icsd", name="gan-bias", epochs=1, device="cpu", max_steps=1,
               max_rows=60, batch_size=16, progress=False, n_eval_samples=20, output_bias=-4.0,
               config=SMALL_GAN_CONFIG)
    g = load_model(small_store, "gan-bias").module.generator
    last = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    assert last.bias.item() == pytest.approx(-4.0, abs=0.05)  # one Adam step (lr 1e-4) away
    assert mv.metrics["sample"]["decodable_pct"] < 50  # few cells reach 0.2 yet
    maps = g.eval()(torch.randn(64, g.config.latent_dim, generator=torch.Generator().manual_seed(0)))
    assert float((maps >= 1 - onehot.DEFAULT_TOLERANCE).float().mean()) < 0.05
