"""The composition attention model (models/attention.py): train -> registry -> reload round trip on
real OQMD rows, token order and padding invariance, elements without an embedding, and the
predict / fused generate --predict paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matstore import models, runner, training
from matstore.compositions import CompositionBatch
from matstore.models import attention
from matstore.predict import predict
from matstore.registry import load_model, predict_module
from matstore.store import Store
from _runner_helpers import ReplayGenerator, load_compositions
from _store_data import new_store

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "head": [32, 16]}
FE_FILE = "oqmd/formation_enthalpy_train.csv"


def _rows(read_formulas, n: int, offset: int = 0):
    df = read_formulas(FE_FILE).sample(fraction=1.0, shuffle=True, seed=3).slice(offset, n)
    return df["formula"].to_list(), df["target"].to_numpy()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, read_formulas):
    """400 real OQMD compositions with formation energies and a 2-epoch tiny attn-fe on them."""
    store = new_store(tmp_path_factory.mktemp("attn") / "attn.duckdb")
    formulas, values = _rows(read_formulas, 400)
    load_compositions(store, formulas, "oqmd", list(values))
    mv = training.train(store, "attn-fe", epochs=2, batch_size=64, config=TINY, progress=False)
    return store, formulas, mv


def _module(seed: int = 0, **over):
    torch.manual_seed(seed)
    m = models.build("attention", {**TINY, **over})
    m.fit_scaling(np.zeros((2, 86)), np.array([-1.0, 1.0]))
    return m.eval()


def _x(formulas: list[str]) -> np.ndarray:
    return models.featurize("attention", "fractions", CompositionBatch.from_formulas(formulas))


def test_train_registry_reload_predicts_identically(trained, monkeypatch):
    store, formulas, mv = trained
    assert mv.kind == "attention" and mv.metrics["history"]["epochs_run"] == 2
    loaded = load_model(store, mv.ref)
    assert loaded.kind == "attention" and loaded.featurizer == "fractions"
    # the stored test metric is recomputed from the reloaded weights on the test split's rows
    test = store.query("SELECT p.formula, p.formation_energy_per_atom y FROM composition_sets s "
                       "JOIN composition_properties_by_source p USING (composition_id) "
                       "WHERE s.set_name = ? AND p.source = 'oqmd'", [f"{mv.ref}/test"])
    batch = CompositionBatch.from_formulas(test["formula"].to_list())
    pred = loaded.predict(batch)
    mae = float(np.abs(pred - test["y"].to_numpy()).mean())
    assert len(pred) == mv.metrics["test"]["n"] > 0
    assert mae == pytest.approx(mv.metrics["test"]["mae"], rel=1e-5)
    # the embedding table is part of the weights: a reload without elementembeddings predicts the same
    attention.embedding_table.cache_clear()

    def unavailable(*_):
        raise attention.EmbeddingUnavailable("test: package data unreadable")

    monkeypatch.setattr(attention, "embedding_table", unavailable)
    again = load_model(store, mv.ref)
    assert not again.module.embedding_loaded
    assert np.array_equal(again.predict(batch), pred)
    assert float(again.module.table.abs().sum()) > 0          # filled from the state_dict


def test_token_order_and_padding_do_not_change_a_prediction(read_formulas):
    formulas, _ = _rows(read_formulas, 60)
    formulas = formulas + ["Ba2Ca2Cu3HgO8", "NaCl"]    # a 5-element cuprate next to a binary
    m = _module(seed=1)
    x = torch.as_tensor(_x(formulas))
    with torch.no_grad():
        idx, frac, pad = m.tokens(x)
        base = m.forward_tokens(idx, frac, pad)
        g = torch.Generator().manual_seed(0)
        perm = torch.stack([torch.randperm(idx.shape[1], generator=g) for _ in range(len(idx))])
        shuffled = m.forward_tokens(idx.gather(1, perm), frac.gather(1, perm), pad.gather(1, perm))
        more = m.tokens(x, min_tokens=12)                 # 12 slots: more padding
        padded = m.forward_tokens(*more)
        alone = torch.cat([m(x[i:i + 1]) for i in range(len(x))])   # each row in its own batch
        batched = m(x)
    assert more[0].shape[1] == 12 and idx.shape[1] < 12
    assert torch.isfinite(base).all() and base.std() > 0
    assert torch.allclose(shuffled, base, atol=1e-5, rtol=1e-5)
    assert torch.allclose(padded, base, atol=1e-5, rtol=1e-5)
    # predict's fixed-shape passes: a row's value does not depend on its batch-mates' element
    # counts (eval pads to a fixed token count), bit for bit
    binaries = [i for i in range(len(x)) if int((x[i] > 0).sum()) <= 2]
    together = predict_module(m, x.numpy(), "cpu")
    assert np.array_equal(predict_module(m, x.numpy()[binaries], "cpu"), together[binaries])
    # and the same composition written in another element order is the same input
    assert np.array_equal(_x(["OFe2"]), _x(["Fe2O"]))


def test_an_element_without_an_embedding_gets_a_learned_offset(read_formulas, monkeypatch):
    real = attention.embedding_table("mat2vec", attention.input_elements(86))
    fe = attention.input_elements(86).index("Fe")

    def without_fe(name, elements):
        table, missing = real[0].copy(), real[1].copy()
        table[fe], missing[fe] = 0.0, True
        return table, missing

    monkeypatch.setattr(attention, "embedding_table", without_fe)
    m = _module(seed=2)
    assert bool(m.missing[fe]) and int(m.missing.sum()) == 1 and float(m.table[fe].abs().sum()) == 0
    x = torch.as_tensor(_x(["Fe2O3", "Al2O3"]))
    with torch.no_grad():
        before = m(x)
        m.offset[fe] += 0.5                        # the offset moves the Fe row only
        after = m(x)
    assert torch.isfinite(before).all() and torch.isfinite(after).all()
    assert before[0] != after[0] and before[1] == after[1]


def test_elements_outside_the_fractions_columns_predict_null(trained):
    store, _, mv = trained
    loaded = load_model(store, mv.ref)
    pred = loaded.predict(CompositionBatch.from_formulas(["HeLi", "NaCl", "RnF2"]))
    assert np.isnan(pred[0]) and np.isfinite(pred[1]) and np.isnan(pred[2])


def test_config_is_checked():
    with pytest.raises(models.ModelConfigError, match="divisible"):
        models.build("attention", {"d_model": 18, "n_heads": 4})
    with pytest.raises(models.ModelConfigError, match="fractions"):
        models.build("attention", {"n_inputs": 218})


def test_predict_and_fused_generate_accept_the_attention_kind(trained, read_formulas):
    store, formulas, mv = trained
    new, _ = _rows(read_formulas, 300, offset=400)            # compositions the model never saw
    res = runner.generate(store, ReplayGenerator(new), 300, batch_size=100, seed=1, device="cpu",
                          progress=False, stages=runner.Stages(featurize=("fractions",), predict=(mv.ref,)))
    got = store.query("SELECT c.formula, p.value FROM predictions p JOIN compositions c USING (composition_id) "
                      "WHERE p.run_id = ? ORDER BY c.formula", [res.run_id])
    assert got.height > 100
    want = load_model(store, mv.ref).predict(CompositionBatch.from_formulas(got["formula"].to_list()))
    assert np.array_equal(got["value"].to_numpy(), want)
    where = "composition_id IN (SELECT composition_id FROM compositions) AND composition_id NOT IN " \
            "(SELECT composition_id FROM predictions)"
    out = predict(store, mv.ref, where=where, device="cpu", progress=False)
    assert out.n_predicted > 300 and out.property == "formation_energy_per_atom"
    rows = store.query("SELECT c.formula, p.value FROM predictions p JOIN compositions c USING (composition_id) "
                       "WHERE p.run_id = ? ORDER BY c.formula", [out.run_id])
    want = load_model(store, mv.ref).predict(CompositionBatch.from_formulas(rows["formula"].to_list()))
    assert np.array_equal(rows["value"].to_numpy(), want)


def test_attention_trains_as_a_two_stage_ensemble(tmp_path, shared_data):
    """The composite machinery is generic over torch kinds: attn-bg --ensemble 2 --two-stage gives
    non-negative gaps, a std and p_metal, each equal to a recomputation from the members."""
    import numpy as np
    import torch

    from matstore import training
    from matstore.ingest import run
    from matstore.models import ensemble
    from matstore.registry import load_model
    from matstore.store import Store

    torch.set_num_threads(1)
    store = new_store(tmp_path / "a.duckdb")
    run(store, "oqmd", file=str(shared_data / "oqmd" / "bandgap_train.csv"), props=["band_gap=target:eV"],
        limit=1500)
    mv = training.train(store, "attn-bg", ensemble=2, two_stage=True, epochs=1, progress=False,
                        config={"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 32, "head": [32]})
    lm = load_model(store, mv.ref)
    assert lm.members.k == 2 and lm.members.two_stage
    assert {"accuracy", "mae_nonmetal", "within_1sigma"} <= set(mv.metrics["test"])
    from matstore.compositions import CompositionBatch

    batch = CompositionBatch.from_formulas(["LiF", "ScF3", "Cu", "GaAs", "Fe2O3", "NaCl"])
    out = lm.predict_outputs(batch, device="cpu")
    from matstore import models

    raw = lm.member_outputs(models.featurize("attention", "fractions", batch))
    again = ensemble.combine(raw, "band_gap", True, lm.members.std_scale)
    assert (out.value >= 0).all() and np.allclose(out.value, again.value)
    assert np.allclose(out.std, again.std) and np.allclose(out.p_metal, again.p_metal)
