"""predict over generated candidates, the candidates' prediction columns, and the screens."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from matstore import runner
from matstore.compositions import CompositionBatch
from matstore.predict import PredictError, predict
from matstore.registry import load_model
from _runner_helpers import ReplayGenerator, trained_store


@pytest.fixture(scope="module")
def screened(tmp_path_factory, read_formulas):
    from matstore.featurize import validate_store

    store, formulas, (mv,) = trained_store(tmp_path_factory, read_formulas, "pred")
    run = runner.generate(store, ReplayGenerator(formulas), 3000, batch_size=1000, seed=5,
                          device="cpu", progress=False)
    validate_store(store, progress=False)
    res = predict(store, mv.ref, where="composition_id IN (SELECT composition_id FROM candidates)",
                  chunk_size=700, device="cpu", progress=False)
    return store, mv, run, res


def test_predictions_cover_candidates_and_match_model(screened):
    store, mv, run, res = screened
    cand = store.query("SELECT composition_id, formula, pred_formation_energy_per_atom FROM candidates")
    assert res.n_predicted == cand.height and res.property == "formation_energy_per_atom"
    preds = store.query("SELECT composition_id, value FROM predictions WHERE model_id = ?", [mv.model_id])
    assert preds.height == cand.height and preds["composition_id"].n_unique() == preds.height
    # independent path: formulas -> parse -> batch -> the loaded model
    batch = CompositionBatch.from_formulas(cand["formula"].to_list())
    expect = load_model(store, mv.ref).predict(batch, device="cpu")
    got = cand["pred_formation_energy_per_atom"].to_numpy()
    assert np.allclose(np.nan_to_num(got, nan=99), np.nan_to_num(expect.astype(np.float64), nan=99),
                       atol=1e-6)
    run_row = runner.run_status(store, res.run_id)
    assert run_row["kind"] == "predict" and run_row["status"] == "done"
    assert run_row["n_written"] == res.n_predicted


def test_predict_is_idempotent_and_checks_input(screened):
    store, mv, _, _ = screened
    again = predict(store, mv.ref, where="composition_id IN (SELECT composition_id FROM candidates)",
                    progress=False)
    assert again.n_predicted == 0 and again.run_id is None
    with pytest.raises(PredictError, match="not a property predictor"):
        predict(store, ReplayGenerator(["NaCl"]), progress=False)
    with pytest.raises(PredictError, match="no_such_column"):
        predict(store, mv.ref, where="no_such_column > 1", progress=False)


def test_screen_stable_novel_matches_independent_filter(screened):
    from matstore.report import run_screen, screens

    store = screened[0]
    got = run_screen(store, "stable_novel")
    raw = store.query("SELECT DISTINCT composition_id FROM generated")
    known = store.query("SELECT DISTINCT composition_id FROM materials")["composition_id"].to_list()
    val = store.query("SELECT composition_id, charge_neutral AND electronegativity_balanced AS ok "
                      "FROM validity")
    pr = store.query("SELECT composition_id, value FROM predictions")
    # the screens' default: the assignment's rarest ion has an ICSD share >= 1 %
    from matstore.validity.plausibility import MIN_ION_SHARE, rarest_share
    ox = store.query("SELECT v.composition_id, c.elements, v.oxidation_states FROM validity v "
                     "JOIN compositions c USING (composition_id)")
    plausible = [i for i, e, o in ox.iter_rows() if (rarest_share(e, o) or 0) >= MIN_ION_SHARE]
    expect = (raw.filter(~pl.col("composition_id").is_in(known), pl.col("composition_id").is_in(plausible))
              .join(val.filter(pl.col("ok")), on="composition_id")
              .join(pr.filter(pl.col("value") < 0), on="composition_id"))
    assert 0 < got.height == expect.height
    assert set(got["composition_id"].to_list()) == set(expect["composition_id"].to_list())
    fe = got["pred_formation_energy_per_atom"].to_list()
    assert fe == sorted(fe)
    assert {"semiconductors", "stable_novel"} <= set(screens()["screen"].to_list())
    from matstore.report import ReportError
    with pytest.raises(ReportError, match="no screen 'nope'"):
        run_screen(store, "nope")


def test_report_writes_pngs_and_html(screened, tmp_path):
    from matstore.report import write_report

    store, _, run, _ = screened
    index = write_report(store, tmp_path / "rep", run_id=run.run_id)
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    # one FE predictor, no band gaps: its parity plot, no FE-vs-gap scatter (tests/test_report.py
    # covers the full page)
    assert pngs == ["element_counts.png", "element_frequency.png", "parity_0.png", "recovery_curve.png",
                    "uniqueness_curve.png"]
    page = index.read_text()
    assert all(f'src="{p}"' in page for p in pngs)
    assert all((tmp_path / "rep" / p).stat().st_size > 5000 for p in pngs)
    n = store.query("SELECT n_samples FROM generation_stats WHERE run_id = ?", [run.run_id])["n_samples"][0]
    assert f"<td class=num>{int(n):,}</td>" in page


def test_candidates_name_the_model_version_behind_each_predicted_value(screened, tmp_path):
    """Two versions of a predictor over the same compositions: the column shows the latest run's
    value and names that version, row by row (a recount from the predictions table)."""
    store, mv, _, _ = screened
    second = store.query("SELECT composition_id FROM candidates ORDER BY composition_id LIMIT 40")
    ids = second["composition_id"].to_list()
    # a second version's rows for 40 compositions, from a later run: copy v1's values shifted
    with store.transaction() as con:
        con.execute("INSERT INTO model_versions (name, version, kind, config, weights, weights_sha256, "
                    "created_at) SELECT name, version + 1, kind, config, weights, weights_sha256, now() "
                    "FROM model_versions WHERE model_id = ?", [mv.model_id])
        v2 = con.execute("SELECT max(model_id) FROM model_versions").fetchall()[0][0]
        run = con.execute("INSERT INTO runs (kind, model_id, status, started_at) VALUES "
                          "('predict', ?, 'done', now()) RETURNING run_id", [v2]).fetchall()[0][0]
        con.execute("INSERT INTO predictions (composition_id, model_id, run_id, property, value) "
                    "SELECT composition_id, ?, ?, property, value + 1 "
                    "FROM predictions WHERE model_id = ? AND composition_id IN (SELECT unnest(?))",
                    [v2, run, mv.model_id, ids])
    got = store.query("SELECT composition_id, pred_formation_energy_per_atom AS v, "
                      "pred_formation_energy_model AS m FROM candidates")
    preds = store.query("SELECT p.composition_id, p.value, r.ref FROM predictions p "
                        "JOIN model_refs r USING (model_id) ORDER BY coalesce(run_id, 0), model_id")
    latest = preds.group_by("composition_id", maintain_order=True).last()
    m = got.join(latest, on="composition_id")
    assert m.height == got.height and (m["m"] == m["ref"]).all()
    assert np.allclose(np.nan_to_num(m["v"].to_numpy(), nan=9), np.nan_to_num(m["value"].to_numpy(), nan=9))
    refs = set(got["m"].drop_nulls().to_list())
    assert refs == {mv.ref, f"{mv.name}@{mv.version + 1}"}
    assert got.filter(pl.col("m") == f"{mv.name}@{mv.version + 1}").height == len(ids)
