"""Issue 13, items 2-4: ensembles (mean/std from K members in one version), the two-stage band gap
(metal classifier + non-metal regressor, p_metal stored), band gaps never negative, candidates and
screens naming their model versions and filtering on the ensemble spread. Real OQMD band gaps and
MP formation energies; small models trained for a few epochs."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from matstore import runner, training
from matstore.compositions import CompositionBatch
from matstore.models import ensemble
from matstore.predict import predict
from matstore.registry import export_models, import_models, load_model, predict_module, save_model
from matstore.report import ReportError, run_screen
from matstore.store import Store

from _runner_helpers import ReplayGenerator, copy_store, mp_formulas
from _store_data import new_store

BG_ROWS = 1600
GEN = dict(n=1500, batch_size=500, seed=5, device="cpu", progress=False)


def _bg_rows(read_formulas, n: int, offset: int = 0) -> pl.DataFrame:
    return read_formulas("oqmd/bandgap_train.csv").sample(fraction=1.0, shuffle=True, seed=3).slice(offset, n)


@pytest.fixture(scope="module")
def template(tmp_path_factory, read_formulas):
    """A store with real OQMD band gaps and MP formation energies and four predictors: an
    ElemNet-magpie FE ensemble (K=3), a two-stage band-gap ensemble (K=2), a two-stage band-gap
    model (K=1) and a single ElemNet-magpie band-gap model. Returns (path, refs, formulas of
    the generator: MP formulas the store does not hold, so most candidates are novel)."""
    torch.set_num_threads(1)
    from matstore.ingest import run

    folder = tmp_path_factory.mktemp("unc")
    store = new_store(folder / "template.duckdb")
    _bg_rows(read_formulas, BG_ROWS).write_csv(folder / "bg.csv")   # seeded subsets of the real files
    (read_formulas("mp/e_form.csv").sample(fraction=1.0, shuffle=True, seed=0).head(1000)
     .write_csv(folder / "fe.csv"))
    run(store, "oqmd", file=str(folder / "bg.csv"), props=["band_gap=target:eV"])
    run(store, "mp", file=str(folder / "fe.csv"), props=["formation_energy_per_atom=target:eV/atom"])
    refs = {
        "fe_ens": training.train(store, "elemnet-magpie-fe", target_source="mp", epochs=3, ensemble=3,
                                 progress=False),
        "bg_ens": training.train(store, "bg-two-stage", target_source="oqmd", epochs=3, ensemble=2,
                                 seed=7, progress=False),
        "bg_two": training.train(store, "bg-two-stage", target_source="oqmd", epochs=3, progress=False),
        "bg_one": training.train(store, "elemnet-magpie-bg", target_source="oqmd", epochs=2,
                                 progress=False),
    }
    gen_formulas, _ = mp_formulas(read_formulas, 800, offset=5000)
    return Path(store.path), refs, gen_formulas


@pytest.fixture
def study(template, tmp_path):
    path, refs, formulas = template
    return copy_store(path, tmp_path / "study.duckdb"), refs, formulas


def _generate(store, formulas, stages=None):
    return runner.generate(store, ReplayGenerator(formulas), GEN["n"], batch_size=GEN["batch_size"],
                           seed=GEN["seed"], device=GEN["device"], progress=False, stages=stages)


def _members_state(store, ref) -> dict:
    """The version's weights read back as torch would read a received file: weights_only."""
    rec = store.query("SELECT weights FROM model_versions WHERE name || '@' || version = ?", [ref])
    saved = torch.load(io.BytesIO(rec["weights"][0]), map_location="cpu", weights_only=True)
    return saved["state_dict"]


def _numpy_elemnet(state: dict, prefix: str, x: np.ndarray) -> np.ndarray:
    """One ElemNet member's forward pass in numpy from its own weights (min-max inputs, ReLU
    hidden layers, linear output, target unscaled)."""
    s = {k[len(prefix):]: v.double().numpy() for k, v in state.items() if k.startswith(prefix)}
    h = np.nan_to_num((x.astype(np.float64) - s["x_min"]) / s["x_span"], nan=0.0)
    layers = sorted(int(m.group(1)) for k in s if (m := re.fullmatch(r"net\.(\d+)\.weight", k)))
    for i, n in enumerate(layers):
        h = h @ s[f"net.{n}.weight"].T + s[f"net.{n}.bias"]
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return s["y_mean"] + s["y_std"] * h[:, 0]


# --- ensembles ---------------------------------------------------------------------------------
def test_an_ensemble_is_one_version_recording_its_members(template):
    path, refs, _ = template
    store = Store(path)
    mv = refs["fe_ens"]
    rec = store.query("SELECT hyperparams::VARCHAR AS hp, card::VARCHAR AS card, seed FROM model_versions "
                      "WHERE model_id = ?", [mv.model_id]).row(0, named=True)
    import json

    hp, card = json.loads(rec["hp"]), json.loads(rec["card"])
    scale = hp["members"].pop("std_scale")
    assert hp["members"] == {"k": 3, "seeds": [0, 1, 2], "two_stage": False, "resample": "seeds"}
    assert scale == mv.metrics["std_scale"] > 0
    hp["members"]["std_scale"] = scale
    assert card["members"] == hp["members"] and rec["seed"] == 0
    assert store.query("SELECT count(*) AS n FROM model_versions WHERE name = 'elemnet-magpie-fe'")["n"][0] == 1
    state = _members_state(store, mv.ref)
    assert {k.split(".")[1] for k in state if k.startswith("regressors.")} == {"0", "1", "2"}
    assert not any(k.startswith("classifiers.") for k in state)
    # members differ (different seeds), so the spread is real
    assert not torch.equal(state["regressors.0.net.0.weight"], state["regressors.1.net.0.weight"])
    assert [m["seed"] for m in mv.metrics["members"]] == [0, 1, 2]


def test_ensemble_mean_and_std_equal_a_numpy_recomputation_from_each_members_weights(template, read_formulas):
    path, refs, formulas = template
    store = Store(path)
    ref = refs["fe_ens"].ref
    batch = CompositionBatch.from_formulas(formulas[:500])
    from matstore import models

    x = models.featurize("elemnet", "fractions+magpie", batch)
    state = _members_state(store, ref)
    members = np.stack([_numpy_elemnet(state, f"regressors.{i}.", x) for i in range(3)], axis=1)
    lm = load_model(store, ref)
    got = lm.predict_outputs(batch, device="cpu")
    assert np.allclose(got.value, members.mean(axis=1), atol=1e-5)
    assert np.allclose(got.std, members.std(axis=1, ddof=1) * lm.members.std_scale, atol=1e-5)
    assert np.isnan(got.p_metal).all()
    assert (got.std > 0).all()


def test_ensemble_calibration_metrics_match_the_test_split(template):
    path, refs, _ = template
    store = Store(path)
    mv = refs["fe_ens"]
    test = mv.metrics["test"]
    assert set(test) >= {"mae", "r2", "within_1sigma", "within_2sigma", "mean_std"}
    rows = store.query(f"""
        SELECT c.composition_id, c.elements, c.counts, p.formation_energy_per_atom AS y
        FROM composition_sets s JOIN compositions c USING (composition_id)
        JOIN composition_properties_by_source p USING (composition_id)
        WHERE s.set_name = '{mv.ref}/test' AND p.source = 'mp' ORDER BY c.composition_id""")
    from matstore.featurize import batch_from_arrow

    out = load_model(store, mv.ref).predict_outputs(batch_from_arrow(rows.to_arrow()), device="cpu")
    err = np.abs(rows["y"].to_numpy() - out.value)
    assert test["n"] == rows.height
    assert test["mae"] == pytest.approx(err.mean(), abs=1e-6)
    assert test["within_1sigma"] == pytest.approx((err <= out.std).mean(), abs=1e-9)
    assert test["within_2sigma"] == pytest.approx((err <= 2 * out.std).mean(), abs=1e-9)
    assert 0 <= test["within_1sigma"] <= test["within_2sigma"] <= 1
    unscaled = out.std / mv.metrics["std_scale"]
    assert test["within_1sigma_unscaled"] == pytest.approx((err <= unscaled).mean(), abs=1e-9)


def test_std_scale_is_the_validation_rows_rms_z_score(template):
    """The std reported is the members' spread times the 68.27th percentile of |error| / spread
    over the validation rows of the version's own split: recomputed here from the stored val set."""
    path, refs, _ = template
    store = Store(path)
    mv = refs["fe_ens"]
    rows = store.query(f"""
        SELECT c.composition_id, c.elements, c.counts, p.formation_energy_per_atom AS y
        FROM composition_sets s JOIN compositions c USING (composition_id)
        JOIN composition_properties_by_source p USING (composition_id)
        WHERE s.set_name = '{mv.ref}/val' AND p.source = 'mp' ORDER BY c.composition_id""")
    from matstore.featurize import batch_from_arrow

    lm = load_model(store, mv.ref)
    out = lm.predict_outputs(batch_from_arrow(rows.to_arrow()), device="cpu")
    spread = out.std / lm.members.std_scale
    z = (rows["y"].to_numpy() - out.value) / spread
    assert rows.height == mv.metrics["val"]["n"] > 0
    assert lm.members.std_scale == pytest.approx(float(np.quantile(np.abs(z), 0.6827)), rel=1e-5)
    assert mv.metrics["val"]["within_1sigma"] == pytest.approx((np.abs(z) <= lm.members.std_scale).mean(), abs=1e-9)


def test_predict_and_the_fused_generate_stage_store_the_same_mean_std_and_p_metal(template, tmp_path):
    path, refs, formulas = template
    fused, separate = copy_store(path, tmp_path / "fused.duckdb"), copy_store(path, tmp_path / "sep.duckdb")
    models_ = (refs["fe_ens"].ref, refs["bg_ens"].ref, refs["bg_two"].ref)
    _generate(fused, formulas, runner.Stages(predict=models_))
    _generate(separate, formulas)
    for ref in models_:
        predict(separate, ref, where="composition_id IN (SELECT composition_id FROM generated)",
                chunk_size=500, device="cpu", progress=False)
    q = ("SELECT composition_id, model_id, value, std, p_metal FROM predictions "
         "ORDER BY model_id, composition_id")
    a, b = fused.query(q), separate.query(q)
    assert a.height == b.height > 0
    assert a.equals(b)   # bit-identical values, spreads and metal probabilities, NULLs alike
    ens = a.filter(pl.col("model_id") == refs["bg_ens"].model_id)
    assert ens["std"].null_count() < ens.height and ens["p_metal"].null_count() < ens.height
    single = a.filter(pl.col("model_id") == refs["bg_two"].model_id)
    assert single["std"].null_count() == single.height                   # one model: no spread
    assert single["p_metal"].null_count() < single.height
    fe = a.filter(pl.col("model_id") == refs["fe_ens"].model_id)
    assert fe["p_metal"].null_count() == fe.height and fe["std"].null_count() < fe.height


def test_a_forest_ensemble_is_its_trees(template, tmp_path):
    """rf --ensemble K: one forest of K trees whose spread is the std; the value and std equal
    a recomputation from sklearn's own trees; the trees' seeds are recorded."""
    path, refs, formulas = template
    store = copy_store(path, tmp_path / "rf.duckdb")
    mv = training.train(store, "rf-bg", target_source="oqmd", ensemble=12, config={"n_jobs": 1},
                        progress=False)
    lm = load_model(store, mv.ref)
    trees = lm.module.estimator.estimators_
    assert len(trees) == 12 and lm.members.k == 12 and lm.members.resample == "bootstrap"
    assert len(set(lm.members.seeds)) == 12          # each tree's own bootstrap seed, recorded
    assert "within_1sigma" in mv.metrics["test"]
    batch = CompositionBatch.from_formulas(formulas[:300])
    from matstore import models

    x = models.featurize("rf", "magpie", batch).reshape(len(batch), -1)
    per_tree = np.stack([t.predict(x) for t in trees], axis=1)
    got = lm.predict_outputs(batch, device="cpu")
    assert np.allclose(got.value, per_tree.mean(axis=1), atol=1e-9)
    assert np.allclose(got.std, per_tree.std(axis=1, ddof=1) * lm.members.std_scale, atol=1e-9)
    predict(store, mv.ref, where="composition_id IN (SELECT composition_id FROM materials "
                                 "WHERE source = 'mp' ORDER BY 1 LIMIT 200)", device="cpu", progress=False)
    n = store.query("SELECT count(value) AS v, count(std) AS s FROM predictions WHERE model_id = ?",
                    [mv.model_id]).row(0, named=True)
    assert n["v"] == n["s"] > 150


# --- two-stage band gap ----------------------------------------------------------------------------
def test_two_stage_metrics_and_stored_p_metal(study):
    store, refs, formulas = study
    m = refs["bg_two"].metrics["test"]
    assert set(m) >= {"accuracy", "roc_auc", "mae", "mae_nonmetal", "r2", "n_nonmetal"}
    assert 0.5 <= m["accuracy"] <= 1 and 0.5 <= m["roc_auc"] <= 1 and m["n_nonmetal"] > 0
    assert "within_1sigma" not in m                      # one member: no spread to calibrate
    assert "within_1sigma" in refs["bg_ens"].metrics["test"]
    _generate(store, formulas)
    for ref in (refs["bg_two"].ref, refs["bg_ens"].ref):
        predict(store, ref, where="composition_id IN (SELECT composition_id FROM candidates)",
                device="cpu", progress=False)
    rows = store.query("SELECT c.formula, p.value, p.std, p.p_metal FROM predictions p "
                       "JOIN compositions c USING (composition_id) WHERE model_id = ? AND value IS NOT NULL "
                       "ORDER BY composition_id", [refs["bg_two"].model_id])
    pm, v = rows["p_metal"].to_numpy(), rows["value"].to_numpy()
    assert ((pm >= 0) & (pm <= 1)).all() and (v >= 0).all()
    assert (v[pm >= 0.5] == 0).all()                     # a metal's gap is 0
    # the non-metals get the regressor's gap: recomputed from the raw member outputs
    lm = load_model(store, refs["bg_two"].ref)
    from matstore import models

    x = models.featurize("elemnet", "fractions+magpie", CompositionBatch.from_formulas(rows["formula"].to_list()))
    raw = lm.member_outputs(x)
    assert np.allclose(pm, ensemble.sigmoid(raw[:, 0, 0]), atol=1e-9)
    assert np.allclose(v[pm < 0.5], np.maximum(raw[pm < 0.5, 0, 1], 0), atol=1e-6)
    # K = 2: mean / std of the members' gaps, mean p_metal
    ens = load_model(store, refs["bg_ens"].ref)
    raw2 = ens.member_outputs(x).astype(np.float64)
    p2 = 1 / (1 + np.exp(-raw2[..., 0]))
    gaps = np.where(p2 >= 0.5, 0.0, np.maximum(raw2[..., 1], 0))
    got = store.query("SELECT value, std, p_metal FROM predictions WHERE model_id = ? AND value IS NOT NULL "
                      "ORDER BY composition_id", [refs["bg_ens"].model_id])
    assert np.allclose(got["value"].to_numpy(), gaps.mean(axis=1), atol=1e-6)
    assert np.allclose(got["std"].to_numpy(), gaps.std(axis=1, ddof=1) * ens.members.std_scale, atol=1e-6)
    assert np.allclose(got["p_metal"].to_numpy(), p2.mean(axis=1), atol=1e-6)


def test_band_gaps_are_never_negative_even_from_a_regressor_that_goes_negative(study):
    """Real rows through regressors shifted 3 eV down (so most raw outputs are negative): every
    stored band gap is >= +0 (no -0), single model and two-stage ensemble alike."""
    store, refs, formulas = study
    _generate(store, formulas)
    shifted = []
    for key in ("bg_one", "bg_ens"):
        lm = load_model(store, refs[key].ref)
        regs = lm.module.regressors if lm.members else [lm.module]
        with torch.no_grad():
            for r in regs:
                r.y_mean -= 3.0
        hp = lm.record["hyperparams"]
        shifted.append(save_model(store, f"{key}-shifted", lm.kind, lm.module, lm.record["config"], hp,
                                  None, None, None, None, lm.record["metrics"], "cpu", lm.record["seed"]))
    cands = "composition_id IN (SELECT composition_id FROM candidates)"
    for mv in shifted:
        predict(store, mv.ref, where=cands, device="cpu", progress=False)
    one = load_model(store, shifted[0].ref)
    rows = store.query("SELECT c.formula, p.value FROM predictions p JOIN compositions c USING (composition_id) "
                       "WHERE model_id = ? AND value IS NOT NULL ORDER BY composition_id", [shifted[0].model_id])
    from matstore import models

    x = models.featurize("elemnet", "fractions+magpie", CompositionBatch.from_formulas(rows["formula"].to_list()))
    raw = predict_module(one.module, x, "cpu")
    assert (raw < 0).mean() > 0.5                       # the regressor does go negative
    v = rows["value"].to_numpy()
    assert (v >= 0).all() and not np.signbit(v).any()
    assert np.allclose(v, np.maximum(raw, 0), atol=1e-6) and (v[raw <= 0] == 0).all()
    ens = store.query("SELECT value, std FROM predictions WHERE model_id = ? AND value IS NOT NULL",
                      [shifted[1].model_id])
    assert ens.height > 0 and (ens["value"] >= 0).all() and not np.signbit(ens["value"].to_numpy()).any()
    assert (ens["std"] >= 0).all()


# --- candidates and screens name their models; screens filter on the spread ------------------------
def test_candidates_never_mix_two_band_gap_versions(study):
    """Version A (an ensemble: value, std, p_metal) predicts every candidate, then version B (one
    model: no std, no p_metal) a later run over half of them: each row's band-gap columns are one
    predictions row, of the version it names (before, a later single model showed the ensemble's
    std beside its own value)."""
    store, refs, formulas = study
    _generate(store, formulas)
    a, b = refs["bg_ens"], refs["bg_one"]
    predict(store, a.ref, where="composition_id IN (SELECT composition_id FROM candidates)",
            device="cpu", progress=False)
    predict(store, b.ref, where="composition_id IN (SELECT composition_id FROM candidates) "
                                "AND composition_id % 2 = 0", device="cpu", progress=False)
    c = store.query("""
        SELECT c.composition_id, c.pred_band_gap, c.pred_band_gap_std, c.pred_band_gap_p_metal,
               c.pred_band_gap_model, p.value, p.std, p.p_metal, m.ref
        FROM candidates c
        LEFT JOIN model_refs m ON m.ref = c.pred_band_gap_model
        LEFT JOIN predictions p ON p.composition_id = c.composition_id AND p.model_id = m.model_id""")
    assert c.height > 100
    even = c["composition_id"] % 2 == 0
    assert (c.filter(even)["pred_band_gap_model"] == b.ref).all()
    assert (c.filter(~even)["pred_band_gap_model"] == a.ref).all()
    for col, src in (("pred_band_gap", "value"), ("pred_band_gap_std", "std"), ("pred_band_gap_p_metal", "p_metal")):
        same = (c[col] == c[src]) | (c[col].is_null() & c[src].is_null())
        assert same.all(), col
    assert c.filter(even)["pred_band_gap_std"].null_count() == even.sum()      # B has no spread
    assert c.filter(~even)["pred_band_gap_std"].null_count() < (~even).sum()


def test_every_screen_names_the_model_version_behind_each_predicted_column(store):
    """A static check on the shipped views: each predicted column has its version column."""
    from matstore.report import screens

    for name in screens()["screen"].to_list():
        with store.connect() as con:
            cols = [r[0] for r in con.execute(f'DESCRIBE SELECT * FROM "screen_{name}"').fetchall()]
        if "pred_formation_energy_per_atom" in cols:
            assert {"pred_formation_energy_model", "fe_model"} & set(cols), name
            assert "pred_formation_energy_std" in cols, name
        if "pred_band_gap" in cols:
            assert {"pred_band_gap_model", "band_gap_model"} & set(cols), name
            assert {"pred_band_gap_std", "pred_band_gap_p_metal"} <= set(cols), name
        if {"e_above_hull", "pred_e_above_hull"} & set(cols):
            # a composition model's hull, or a potential's hull of relaxed structures
            assert {"fe_model", "reference"} <= set(cols) or {"potential", "convention", "reference"} <= set(cols), name


def test_a_screen_filtered_on_std_keeps_exactly_the_rows_an_independent_query_keeps(study):
    store, refs, formulas = study
    _generate(store, formulas, runner.Stages(validate=True, predict=(refs["fe_ens"].ref,)))
    full = run_screen(store, "stable_novel")
    assert full.height > 20 and (full["fe_model"] == refs["fe_ens"].ref).all()
    bound = float(np.median(full["pred_formation_energy_std"].to_numpy()))
    got = run_screen(store, "stable_novel", max_std=bound)
    expect = store.query("""
        SELECT p.composition_id FROM predictions p
        WHERE p.model_id = ? AND p.value < 0 AND p.std <= ?
          AND p.composition_id IN (SELECT composition_id FROM candidates WHERE novel AND valid
                                   AND rarest_ion_share >= 0.01)
        ORDER BY 1""", [refs["fe_ens"].model_id, bound])
    assert 0 < got.height < full.height
    assert sorted(got["composition_id"].to_list()) == expect["composition_id"].to_list()
    assert (got["pred_formation_energy_std"] <= bound).all()
    with pytest.raises(ReportError, match="finite number"):
        run_screen(store, "stable_novel", max_std=float("nan"))
    with pytest.raises(ReportError, match="name the screen"):
        run_screen(store, None, max_std=0.1)


# --- moving versions and stores ---------------------------------------------------------------------
def test_an_exported_ensemble_imports_and_predicts_the_same(template, tmp_path, store):
    path, refs, formulas = template
    src = Store(path)
    f = tmp_path / "ens.parquet"
    export_models(src, f, [refs["bg_ens"].ref])
    import_models(store, f)
    batch = CompositionBatch.from_formulas(formulas[:300])
    a = load_model(src, refs["bg_ens"].ref).predict_outputs(batch, device="cpu")
    b = load_model(store, refs["bg_ens"].ref).predict_outputs(batch, device="cpu")
    for x, y in ((a.value, b.value), (a.std, b.std), (a.p_metal, b.p_metal)):
        assert np.array_equal(x, y, equal_nan=True)


def test_a_received_store_with_spreads_and_metal_probabilities_merges(study, tmp_path):
    from matstore.merge import merge

    other, refs, formulas = study
    _generate(other, formulas, runner.Stages(predict=(refs["bg_ens"].ref,)))
    ours = new_store(tmp_path / "ours.duckdb")
    merge(ours, other.path)
    q = ("SELECT c.formula, p.value, p.std, p.p_metal FROM predictions p JOIN compositions c "
         "USING (composition_id) ORDER BY c.formula")
    a, b = other.query(q), ours.query(q)
    assert a.height > 0 and a.equals(b)
    assert b["std"].null_count() < b.height and b["p_metal"].null_count() < b.height


def test_cli_trains_an_ensemble_and_screens_on_its_spread(template, tmp_path):
    from click.testing import CliRunner

    from matstore.cli import main

    path, _, _ = template
    db = tmp_path / "cli.duckdb"
    shutil.copy(path, db)
    res = CliRunner().invoke(main, ["train", "--db", str(db), "--model", "elemnet-magpie-bg", "--epochs", "1",
                                    "--ensemble", "2", "--target-source", "oqmd", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "within_1sigma" in res.output
    res = CliRunner().invoke(main, ["screen", "stable_novel", "--db", str(db), "--max-std", "0.5", "--csv"])
    assert res.exit_code == 0 and "pred_formation_energy_std" in res.output, res.output
    res = CliRunner().invoke(main, ["screen", "--db", str(db), "--max-std", "0.5"])
    assert res.exit_code != 0 and "name the screen" in res.output
    res = CliRunner().invoke(main, ["train", "--db", str(db), "--model", "rf-bg", "--two-stage"])
    assert res.exit_code != 0 and "two-stage needs a torch kind" in res.output
    res = CliRunner().invoke(main, ["train", "--db", str(db), "--model", "gan-mp-small", "--ensemble", "2"])
    assert res.exit_code != 0 and "needs a property predictor" in res.output
    res = CliRunner().invoke(main, ["train", "--db", str(db), "--model", "elemnet-magpie-fe",
                                    "--two-stage", "--target-source", "mp"])
    assert res.exit_code != 0 and "two-stage" in res.output


def test_a_model_file_whose_members_do_not_fit_its_weights_is_refused(template, tmp_path, store):
    """An export whose recorded members were edited (more members than weights, a huge K, two
    stages the weights lack) is refused by name before anything is written or built."""
    import json

    from matstore.registry import ModelError

    path, refs, _ = template
    f = tmp_path / "ens.parquet"
    export_models(Store(path), f, [refs["fe_ens"].ref])
    df = pl.read_parquet(f)
    hp = json.loads(df["hyperparams"][0])
    for members, match in (({"k": 4, "seeds": [0, 1, 2, 3]}, "missing"),
                           ({"k": 10 ** 6, "seeds": list(range(10 ** 6))}, "at most|<= 64"),
                           ({"k": 3, "seeds": [0, 1, 2], "two_stage": True}, "missing")):
        bad = tmp_path / "bad.parquet"
        df.with_columns(pl.lit(json.dumps({**hp, "members": members})).alias("hyperparams")).write_parquet(bad)
        with pytest.raises(ModelError, match=match):
            import_models(store, bad)
    assert store.query("SELECT count(*) AS n FROM model_versions")["n"][0] == 0


def test_an_ensemble_beyond_its_bound_is_refused_before_any_data_is_read(tmp_path):
    from matstore.training.presets import PresetError

    store = new_store(tmp_path / "empty.duckdb")
    with pytest.raises(PresetError, match="at most 64 members"):
        training.train(store, "elemnet-magpie-fe", ensemble=65, progress=False)
    with pytest.raises(PresetError, match="at most 5,000 trees"):
        training.train(store, "rf-bg", ensemble=1_000_000, progress=False)
