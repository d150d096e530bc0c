"""`matstore demo` end to end on the builtin data, at a CI size (the real demo is bigger)."""

from __future__ import annotations

import polars as pl
import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_is_consistent(tmp_path):
    from matstore import demo as pipeline
    from matstore.report import run_screen
    from matstore.store import Store

    store = Store(tmp_path / "demo.duckdb")
    # 3 epochs: the fewest whose samples decode (1 epoch: 0%, a run generate now refuses; 3: ~28%)
    res = pipeline.run_demo(store, samples=3000, gan_epochs=3, gan_rows=1000, seed=0, device="cpu", top=5,
                            progress=False)
    models = store.query("SELECT name, kind, training_rows FROM model_versions ORDER BY model_id")
    assert models["name"].to_list() == [pipeline.GAN_NAME, pipeline.FE_NAME]
    # the GAN trained on (a subset of) the builtin MP part (~35k compositions), the predictor on
    # the experimental formation enthalpies
    n_mp = store.query(f"SELECT count(*) AS n FROM ({pipeline.MP_SELECTION})")["n"][0]
    assert 30000 < n_mp and models["training_rows"][0] <= 1000
    assert 1500 < models["training_rows"][1] < 2200
    run = store.query("SELECT * FROM runs WHERE run_id = ?", [res.run_id]).row(0, named=True)
    assert run["status"] == "done" and run["n_requested"] == 3000
    gen_ids = store.query("SELECT DISTINCT composition_id FROM generated WHERE run_id = ?", [res.run_id])
    assert gen_ids.height > 0   # the checks below are about real candidates
    # every generated composition was validated and predicted
    val = store.query("SELECT DISTINCT composition_id FROM validity")
    pred = store.query("SELECT DISTINCT composition_id FROM predictions")
    assert gen_ids.join(val, on="composition_id", how="anti").height == 0
    assert gen_ids.join(pred, on="composition_id", how="anti").height == 0
    # ... and placed against the hull of the builtin formation enthalpies
    hull = store.query("SELECT DISTINCT composition_id FROM stability WHERE reference = ?",
                       [pipeline.HULL_REFERENCE])
    assert gen_ids.join(hull, on="composition_id", how="anti").height == 0
    screened = run_screen(store, "hull_novel")
    assert screened.height == res.n_screened
    assert (screened["e_above_hull"] <= 0.1).all()
    assert screened["e_above_hull"].to_list() == sorted(screened["e_above_hull"].to_list())
    # re-running reuses the stored models and ingest, and adds one generation run
    res2 = pipeline.run_demo(store, samples=1000, seed=1, device="cpu", top=5, progress=False)
    assert store.query("SELECT count(*) AS n FROM model_versions")["n"][0] == 2
    assert res2.run_id > res.run_id
    assert store.query("SELECT count(*) AS n FROM ingests")["n"][0] >= 1


@pytest.mark.slow
def test_demo_uses_the_shipped_transformer_and_its_candidates_look_like_known_ones(tmp_path):
    """Without a GAN asked for, the demo imports the shipped transformer (no training) and prints
    the total variation distance between its candidates' elements-per-composition histogram and
    the known compositions' (issue 14 asks for <= 0.10). Measured (seed 0, 20,000 samples): 0.147
    for the screened candidates, 0.131 for all the run's candidates. No generator of the (element,
    count <= 8) vocabulary gets under 0.10 here: 30% of the demo's known compositions (the builtin
    matminer MP list) have a count above 8, and the expressible ones alone are 0.104 TV from the
    whole set; the shipped model follows its own training set (TV 0.009 of samples,
    benchmarks/generators.py). The bounds below guard against regressions."""
    import torch

    from matstore import demo as pipeline
    from matstore.store import Store

    torch.set_num_threads(1)
    store = Store(tmp_path / "demo.duckdb")
    res = pipeline.run_demo(store, samples=20000, seed=0, device="cpu", top=5, progress=False)
    models = store.query("SELECT name, kind FROM model_versions ORDER BY model_id")
    assert models.rows() == [(pipeline.PRETRAINED, "transformer"), (pipeline.FE_NAME, "rf")]
    assert res.gan.startswith(pipeline.PRETRAINED) and "train_gan" not in res.seconds
    assert res.n_screened > 100
    # recount: the screened candidates' histogram against the known compositions'
    from matstore.report import run_screen

    from matstore.report.screens import RELAXABLE

    known = store.query("SELECT n_elements, count(*) AS n FROM compositions WHERE composition_id IN "
                        "(SELECT composition_id FROM known) GROUP BY 1")
    q = {r[0]: r[1] / known["n"].sum() for r in known.rows()}

    def tv_of(relax=()) -> float:
        top = run_screen(store, "hull_novel", relax=relax)["n_elements"].value_counts()
        p = {r[0]: r[1] / top["count"].sum() for r in top.rows()}
        return 0.5 * sum(abs(p.get(k, 0) - q.get(k, 0)) for k in set(p) | set(q))

    assert res.tv_top == pytest.approx(tv_of())
    # the generator's candidates before the coverage / ion filters (issue 24), which keep chemical
    # systems with reference phases (binary-heavy under the demo's 2,135 experimental phases)
    assert tv_of(tuple(RELAXABLE)) <= 0.16
    assert res.tv_candidates <= 0.14
