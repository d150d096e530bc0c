"""Generation quality (issue 14, item 1): every metric of generation_quality equals a recount in
polars/numpy from the raw rows, the Fréchet distance behaves, and `matstore quality` prints it."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import scipy.linalg
from click.testing import CliRunner

from matstore import quality, runner
from matstore.cli import main
from matstore.compositions import CompositionBatch
from matstore.features.magpie import Magpie
from matstore.training import train

from _runner_helpers import ReplayGenerator, load_compositions, mp_formulas
from _store_data import new_store


@pytest.fixture(scope="module")
def runs(tmp_path_factory, read_formulas):
    """1,500 real MP compositions, a tiny real GAN (its split in composition_sets), one run of the
    GAN and one replaying MP formulas (most of them in its train / leave-out sets) as that
    version, both validated per batch."""
    store = new_store(tmp_path_factory.mktemp("quality") / "q.duckdb")
    formulas, values = mp_formulas(read_formulas, 1500)
    load_compositions(store, formulas, "mp", values)
    with pytest.warns(Warning):   # 2 epochs decode few samples: the low-decodable warning
        mv = train(store, "gan-mp-small", name="small", epochs=2, max_rows=1200, device="cpu",
                   progress=False)
    stages = runner.Stages(True, (), (), None)
    gan = runner.generate(store, mv.ref, 4000, batch_size=1000, seed=0, device="cpu",
                          progress=False, stages=stages)
    replay = runner.generate(store, ReplayGenerator(formulas, model_id=mv.model_id), 3000,
                             batch_size=1000, seed=1, device="cpu", progress=False, stages=stages)
    return store, [gan.run_id, replay.run_id]


def _table(store, name):
    return store.query(f"SELECT * FROM {name}")


def _tv(a: pl.Series, b: pl.Series) -> float:
    """TV distance of two samples of labels, by numpy over the union of labels."""
    keys = sorted(set(a.to_list()) | set(b.to_list()))
    p = np.array([(a == k).sum() for k in keys], float)
    q = np.array([(b == k).sum() for k in keys], float)
    return 0.5 * np.abs(p / p.sum() - q / q.sum()).sum()


def recount(store, run_id: int) -> dict:
    gen, batches = _table(store, "generated"), _table(store, "run_batches")
    comps, validity = _table(store, "compositions"), _table(store, "validity")
    sets, materials = _table(store, "composition_sets"), _table(store, "materials")
    checker = _table(store, "validity_checkers").filter(pl.col("is_default"))["checker_version"][0]
    model_id = store.query("SELECT model_id FROM runs WHERE run_id = ?", [run_id])["model_id"][0]
    b = batches.filter(pl.col("run_id") == run_id)
    ids = set(gen.filter(pl.col("run_id") == run_id)["composition_id"].to_list())
    known = set(materials["composition_id"].to_list())
    v = validity.filter((pl.col("checker_version") == checker) & pl.col("composition_id").is_in(list(ids)))
    cn, eb = v["charge_neutral"].fill_null(False), v["electronegativity_balanced"].fill_null(False)
    mine = sets.filter(pl.col("model_id") == model_id)
    train_ids = set(mine.filter(pl.col("role") == "train")["composition_id"].to_list())
    leave = set(mine.filter(pl.col("role").is_in(["val", "test", "holdout"]))["composition_id"].to_list())
    g = comps.filter(pl.col("composition_id").is_in(list(ids)))
    # each sample as drawn (repeats included), and those with a validity row
    gs = gen.filter(pl.col("run_id") == run_id).select("composition_id").join(comps, on="composition_id")
    vs = gs.join(v.with_columns(cn=cn, eb=eb).select("composition_id", "cn", "eb"), on="composition_id")
    r = comps.filter(pl.col("composition_id").is_in(list(train_ids)))
    pct = lambda a, n: 100.0 * a / n if n else None  # noqa: E731
    return {
        "n_samples": b["n_samples"].sum(), "n_decodable": b["n_decodable"].sum(),
        "n_unique": len(ids), "unique_pct": pct(len(ids), b["n_decodable"].sum()),
        "n_novel": len(ids - known), "novel_pct": pct(len(ids - known), len(ids)),
        "n_checked": v.height, "charge_neutral_pct": pct(cn.sum(), v.height),
        "electronegativity_balanced_pct": pct(eb.sum(), v.height),
        "both_valid_pct": pct((cn & eb).sum(), v.height),
        "train_size": len(train_ids), "train_recovered": len(train_ids & ids),
        "train_recovery_pct": pct(len(train_ids & ids), len(train_ids)),
        "leave_out_size": len(leave), "leave_out_recovered": len(leave & ids),
        "leave_out_recovery_pct": pct(len(leave & ids), len(leave)),
        "tv_element_count": _tv(g["n_elements"], r["n_elements"]),
        "tv_element_frequency": _tv(g["elements"].explode(), r["elements"].explode()),
        "checker_version": checker, "reference": "training set",
        "n_samples_checked": vs.height, "charge_neutral_samples_pct": pct(vs["cn"].sum(), vs.height),
        "electronegativity_balanced_samples_pct": pct(vs["eb"].sum(), vs.height),
        "both_valid_samples_pct": pct((vs["cn"] & vs["eb"]).sum(), vs.height),
        "tv_element_count_samples": _tv(gs["n_elements"], r["n_elements"]),
        "tv_element_frequency_samples": _tv(gs["elements"].explode(), r["elements"].explode()),
    }


def test_each_metric_equals_a_recount_from_the_raw_rows(runs):
    store, run_ids = runs
    got = quality.refresh(store)
    assert got["run_id"].to_list() == run_ids
    for run_id in run_ids:
        row = got.filter(pl.col("run_id") == run_id).row(0, named=True)
        want = recount(store, run_id)
        for k, v in want.items():
            assert row[k] == (pytest.approx(v) if isinstance(v, float) else v), (run_id, k)
    replay = got.filter(pl.col("run_id") == run_ids[1]).row(0, named=True)
    # the replay draws MP formulas: it recovers both sets in part, and some samples are invalid
    assert 0 < replay["train_recovery_pct"] < 100 and 0 < replay["leave_out_recovery_pct"] < 100
    assert 0 < replay["both_valid_pct"] < replay["charge_neutral_pct"] <= 100
    assert replay["n_checked"] == replay["n_unique"]
    assert replay["n_samples_checked"] == replay["n_decodable"] > replay["n_unique"]   # repeats count
    # the replay is closer to the training distribution than the 2-epoch GAN
    gan = got.filter(pl.col("run_id") == run_ids[0]).row(0, named=True)
    assert replay["tv_element_count"] < gan["tv_element_count"]
    assert replay["frechet_magpie"] < gan["frechet_magpie"]


def test_frechet_is_the_fid_formula_on_magpie_vectors_and_a_rerun_replaces_the_row(runs):
    store, run_ids = runs
    row = quality.measure(store, run_ids[1])
    gen = store.query("SELECT c.elements, c.counts FROM compositions c WHERE composition_id IN "
                      "(SELECT composition_id FROM generated WHERE run_id = ?) ORDER BY composition_id",
                      [run_ids[1]])
    ref = store.query("SELECT elements, counts FROM compositions WHERE composition_id IN (SELECT "
                      "composition_id FROM composition_sets WHERE role = 'train') ORDER BY composition_id")
    a, b = (Magpie().transform(CompositionBatch.from_lists(d["elements"].to_list(), d["counts"].to_list()))
            for d in (gen, ref))
    a, b = a[np.isfinite(a).all(1)], b[np.isfinite(b).all(1)]
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = (np.sum((a.mean(0) - b.mean(0)) ** 2)
            + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2))))
    assert row["frechet_magpie"] == pytest.approx(want, rel=1e-6)
    assert (row["frechet_n_generated"], row["frechet_n_reference"]) == (len(a), len(b))
    assert store.query("SELECT count(*) AS n FROM generation_quality WHERE run_id = ?",
                       [run_ids[1]])["n"][0] == 1


def test_frechet_of_a_set_with_itself_is_zero_and_grows_with_a_shift(read_formulas):
    formulas, _ = mp_formulas(read_formulas, 800)
    x = Magpie().transform(CompositionBatch.from_formulas(formulas))
    x = x[np.isfinite(x).all(1)]
    assert quality.frechet_distance(x, x) == pytest.approx(0, abs=1e-6 * np.trace(np.cov(x, rowvar=False)))
    scale = x.std(0)
    d = [quality.frechet_distance(x, x + s * scale) for s in (0.1, 0.5, 1.0)]
    assert 0 < d[0] < d[1] < d[2]
    assert d[2] == pytest.approx(np.sum(scale ** 2), rel=1e-6)   # a pure shift adds ||mu||²
    assert quality.frechet_distance(x[:1], x) is None


def test_a_non_generate_run_is_refused(runs):
    store, _ = runs
    with pytest.raises(quality.QualityError, match="no such run"):
        quality.measure(store, 999)


def test_cli_quality_prints_the_row_and_generate_prints_the_summary(runs, tmp_path):
    store, run_ids = runs
    res = CliRunner().invoke(main, ["quality", "--db", str(store.path), "--run", str(run_ids[1]), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    stored = store.query("SELECT * FROM generation_quality WHERE run_id = ?", [run_ids[1]]).row(0, named=True)
    assert [r["run_id"] for r in rows] == [run_ids[1]]
    assert rows[0]["both_valid_pct"] == pytest.approx(stored["both_valid_pct"])
    assert rows[0]["tv_element_count"] == pytest.approx(stored["tv_element_count"])
    res = CliRunner().invoke(main, ["generate", "--db", str(store.path), "--model", "small", "-n", "2000",
                                    "--no-progress", "--validate"])
    assert res.exit_code == 0, res.output
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("quality of run")]
    assert len(line) == 1 and "CN " in line[0] and "TV(count)" in line[0] and "Fréchet" in line[0]
    new = store.query("SELECT max(run_id) AS r FROM generation_quality")["r"][0]
    assert new > run_ids[1] and f"quality of run {new}:" in line[0]

