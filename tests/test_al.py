"""Active learning (issue 16): campaigns resumable after a kill, the external-oracle round trip,
the GP against an independent fit, label files refused with the problem named."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from _store_data import new_store

# a narrow autoencoder (the paper-scale one does not decode after seconds of CPU training)
SMALL_AE = {"latent_dim": 16,
            "encoder": {"convs": [[8, 3, 3, 2, 1], [16, 3, 3, 2, 1], [16, 3, 3, 2, 1], [32, 5, 5, 2, 2]],
                        "norm": "batch"},
            "decoder": {"latent_dim": 16, "fc_channels": 32,
                        "deconvs": [[16, 5, 5, 2, 2], [16, 3, 3, 2, 1], [8, 3, 3, 2, 1], [1, 3, 3, 2, 1]]}}


@pytest.fixture(scope="module")
def al_master(shared_data, tmp_path_factory):
    """A store with the first 2,000 rows of mp/gap.csv, a small autoencoder and an rf-bg oracle
    (built once per module; each test works on a copy)."""
    import torch

    from matstore import training
    from matstore.ingest import run
    from matstore.store import Store

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("al") / "master.duckdb"
    store = new_store(path)
    run(store, "mp", file=str(shared_data / "mp" / "gap.csv"), props=["band_gap=target:eV"], limit=2000)
    training.train(store, "ae", name="ae-t", epochs=5, batch_size=64, lr=3e-3, config=SMALL_AE,
                   progress=False, device="cpu", seed=0)
    training.train(store, "rf-bg", name="oracle-t", progress=False, seed=0, n_jobs=1,
                   config={"n_estimators": 10})
    return path


def _copy(master, folder, name: str):
    """A store of one's own: a copy of a module-scoped master store file."""
    from matstore.store import Store

    p = folder / name
    shutil.copy(master, p)
    return Store(p)


@pytest.fixture
def al_store(al_master, tmp_path):
    return _copy(al_master, tmp_path, "al.duckdb")


@pytest.fixture(scope="module")
def al_external_master(al_master, tmp_path_factory):
    """The master store plus campaign 1 (external oracle) with round 1 proposed."""
    from matstore import al

    store = _copy(al_master, tmp_path_factory.mktemp("al_ext"), "external.duckdb")
    _start(store, "external")
    al.step(store, 1)
    return store.path


@pytest.fixture
def al_external(al_external_master, tmp_path):
    return _copy(al_external_master, tmp_path, "ext.duckdb")


def _count(store, sql, params=None):
    with store.connect() as con:
        return con.execute(sql, params or []).fetchall()[0][0]


def _make_pool(store, n: int) -> None:
    """Table `pool`: n compositions with no material (as a generated set is), made from MP ones."""
    with store.transaction() as con:
        con.execute(f"CREATE TABLE pool AS SELECT composition_id FROM compositions ORDER BY composition_id LIMIT {n}")
        con.execute("DELETE FROM properties WHERE material_id IN (SELECT material_id FROM materials "
                    "WHERE composition_id IN (SELECT composition_id FROM pool))")
        con.execute("DELETE FROM materials WHERE composition_id IN (SELECT composition_id FROM pool)")
        n_known_in_pool = con.execute("SELECT count(*) FROM known WHERE composition_id IN "
                                      "(SELECT composition_id FROM pool)").fetchall()[0][0]
    assert n_known_in_pool == 0


def _start(store, oracle="model:oracle-t", **kw):
    from matstore import al

    args = dict(base_rows=150, batch_size=20, seed=0, n_candidates=400)
    args.update(kw)
    return al.start(store, "ae-t", oracle, **args)


def test_campaign_killed_between_proposals_and_labels_resumes_without_duplicates(al_store, monkeypatch):
    from matstore import al
    from matstore.al import loop

    cid = _start(al_store)
    real = loop.label_round

    def killed(*a, **k):
        raise KeyboardInterrupt("killed after the proposals were committed")

    monkeypatch.setattr(loop, "label_round", killed)
    with pytest.raises(KeyboardInterrupt):
        al.step(al_store, cid)
    monkeypatch.setattr(loop, "label_round", real)
    # the round and all its proposals were committed together, nothing labelled yet
    props = al.proposals(al_store, cid)
    assert props.height == 20 and props["round_no"].unique().to_list() == [1]
    assert props["label"].null_count() == 20
    n_dec = props["composition_id"].drop_nulls().len()
    assert n_dec > 0
    assert _count(al_store, "SELECT count(*) FROM al_rounds WHERE closed_at IS NULL") == 1

    r = al.step(al_store, cid)                    # re-run: completes the killed round
    assert r.resumed and r.round_no == 1 and r.labelled == n_dec and r.proposed == 0
    again = al.proposals(al_store, cid)
    assert again.height == 20 and again["label"].null_count() == 20 - n_dec
    assert again["proposal_id"].to_list() == props["proposal_id"].to_list()
    # labelling is idempotent: the oracle labelling the round again writes nothing
    assert loop.label_round(al_store, al.get(al_store, cid), 1) == 0

    r2 = al.step(al_store, cid)                   # the next step is a new round
    assert r2.round_no == 2 and not r2.resumed and r2.proposed == 20
    allp = al.proposals(al_store, cid)
    assert allp["proposal_id"].n_unique() == 40
    comps = allp["composition_id"].drop_nulls()
    assert comps.n_unique() == comps.len()        # no composition proposed twice
    n_labels = _count(al_store, "SELECT count(*) FROM al_labels")
    assert n_labels == allp["label"].drop_nulls().len()
    assert _count(al_store, "SELECT count(DISTINCT proposal_id) FROM al_labels") == n_labels
    # each label is one properties row of the oracle's own source (kind model), never mp
    assert _count(al_store, "SELECT count(*) FROM properties p JOIN materials m USING (material_id) "
                            "WHERE m.source = ?", [f"al{cid}-oracle"]) == n_labels
    assert _count(al_store, "SELECT kind FROM sources WHERE name = ?", [f"al{cid}-oracle"]) == "model"
    # proposals decode to compositions nobody knew before the campaign
    known_before = _count(al_store, "SELECT count(*) FROM materials m JOIN al_proposals p "
                                    "USING (composition_id) WHERE m.source = 'mp'")
    assert known_before == 0
    # an oracle's label is a prediction: the labelled proposals are not "known" compositions
    assert _count(al_store, "SELECT count(*) FROM known k JOIN al_labels l USING (composition_id)") == 0


def _label_file(store, cid, path, value=lambda i: 0.5 + 0.25 * i):
    from matstore import al

    al.export(store, al.get(store, cid), path)
    df = pl.read_csv(path)
    return df.with_columns(pl.Series("value", [value(i) for i in range(df.height)], dtype=pl.Float64))


def test_external_oracle_round_trip_uses_exactly_the_file_labels(al_store, tmp_path):
    from click.testing import CliRunner

    from matstore import al
    from matstore.al.loop import training_hash, training_set
    from matstore.cli import main

    db = str(al_store.path)

    def cli(*args):
        res = CliRunner().invoke(main, ["al", *args, "--db", db])
        assert res.exit_code == 0, res.output
        return res.output

    assert "campaign 1 started" in cli("start", "--autoencoder", "ae-t", "--oracle", "external",
                                       "--base-rows", "150", "--batch-size", "20", "--candidates", "400")
    cid = 1
    cli("step", "1")
    r1 = al.proposals(al_store, cid)
    n_dec = r1["composition_id"].drop_nulls().len()
    assert r1.height == 20 and n_dec > 0 and r1["label"].null_count() == 20
    res = CliRunner().invoke(main, ["al", "step", "1", "--db", db])   # labels first
    assert res.exit_code == 1 and "awaits" in res.output
    f = tmp_path / "round1.csv"
    cli("export", "1", str(f))
    filled = pl.read_csv(f)
    filled = filled.with_columns(pl.Series("value", [0.5 + 0.25 * i for i in range(filled.height)]))
    assert filled.height == n_dec
    filled.write_csv(f)
    assert "stored" in cli("label", "1", str(f), "--source", "mylab", "--kind", "dft", "--method", "HSE06")
    assert "mylab" not in cli("status", "1", "--json") and '"labels"' in cli("status", "1", "--json")
    assert al.status(al_store, cid)["open_round"].to_list() == [None]      # all labelled: closed
    before = training_set(al_store, al.get(al_store, cid))

    r2 = al.step(al_store, cid)                               # the GP of round 2 sees the labels
    assert r2.round_no == 2 and r2.n_train == before.height
    ts = before.filter(pl.col("source") == "mylab").sort("composition_id")
    expect = filled.select("composition_id", "value").sort("composition_id")
    assert ts["composition_id"].to_list() == expect["composition_id"].to_list()
    assert np.array_equal(ts["value"].to_numpy(), expect["value"].to_numpy())
    stored_hash = _count(al_store, "SELECT train_hash FROM al_rounds WHERE campaign_id = ? AND round_no = 2", [cid])
    assert stored_hash == training_hash(before)
    base = before.filter(pl.col("source") == "mp").height
    assert base + filled.height == r2.n_train            # base + exactly the file's labels
    assert set(before["source"]) == {"mp", "mylab"}
    # the labels are properties of source mylab (dft, HSE06); the DFT column stays mp's
    by_src = al_store.query("SELECT composition_id, band_gap, kind, method FROM composition_properties_by_source "
                            "WHERE source = 'mylab' ORDER BY composition_id")
    assert by_src["band_gap"].to_list() == expect["value"].to_list()
    assert set(by_src["kind"]) == {"dft"} and set(by_src["method"]) == {"HSE06"}
    assert al_store.query("SELECT DISTINCT band_gap_source FROM composition_properties "
                          "WHERE band_gap IS NOT NULL")["band_gap_source"].to_list() == ["mp"]
    # the retrained screen names both selections and both sources
    fin = al.finish(al_store, cid, preset="rf-bg", n_jobs=1, config={"n_estimators": 5})
    card = al_store.query("SELECT hyperparams, training_query, training_rows FROM model_versions "
                          "WHERE model_id = $m", {"m": fin.model_id}).row(0, named=True)
    import json

    hp = json.loads(card["hyperparams"])
    assert [t["target_source"] for t in hp["target_sources"]] == ["mylab", "mp"]
    assert "al_labels" in card["training_query"] and f"al{cid}/base" in card["training_query"]


def test_gp_posterior_matches_an_independent_fit(al_store):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    from matstore import al
    from matstore.al.loop import fit_surrogate

    cid = _start(al_store, base_rows=120)
    gp, train, x = fit_surrogate(al_store, al.get(al_store, cid))
    h = gp.hyperparameters()
    assert h["n_train"] == len(x) == train.height > 50
    u = gp.box.to_unit(x)
    yn = (train["value"].to_numpy() - h["y_mean"]) / h["y_std"]
    kernel = ConstantKernel(h["outputscale"], "fixed") * RBF(np.array(h["lengthscale"]), "fixed")
    ref = GaussianProcessRegressor(kernel, alpha=h["noise"], optimizer=None, normalize_y=False)
    ref.fit(u, yn - h["mean"])
    rng = np.random.default_rng(0)
    elsewhere = gp.box.from_unit(rng.uniform(0, 1, (20, x.shape[1])))
    for pts in (x, elsewhere):
        m_ref, s_ref = ref.predict(gp.box.to_unit(pts), return_std=True)
        mean, var = gp.posterior(pts)
        np.testing.assert_allclose(mean, (m_ref + h["mean"]) * h["y_std"] + h["y_mean"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.sqrt(var), s_ref * h["y_std"], rtol=1e-3, atol=1e-4)
    # the posterior at labelled points is pulled toward the labels (not the prior mean)
    mean, _ = gp.posterior(x)
    assert np.corrcoef(mean, train["value"].to_numpy())[0, 1] > 0.5


@pytest.mark.parametrize("problem,edit,message", [
    ("unknown ids", lambda df: df.with_columns(pl.col("proposal_id") + 10_000), "not proposals of campaign"),
    ("nan", lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(float("nan"))
                                         .otherwise(pl.col("value")).alias("value")), "finite"),
    # the last row: the small test campaign's round may decode as few as one proposal (1 of 20
    # with the locked torch/botorch), so no row number beyond 0 is sure to exist
    ("inf", lambda df: df.with_columns(pl.when(pl.int_range(pl.len()) == pl.len() - 1).then(float("inf"))
                                         .otherwise(pl.col("value")).alias("value")), "finite"),
    ("wrong columns", lambda df: df.rename({"value": "band_gap"}), "missing column"),
    ("extra column", lambda df: df.with_columns(pl.lit(1).alias("sql")), "unknown column"),
    ("text values", lambda df: df.with_columns(pl.lit("high").alias("value")), "must be numbers"),
    ("duplicates", lambda df: pl.concat([df, df.head(1)]), "more than once"),
    ("formula", lambda df: df.with_columns(pl.lit("NaCl").alias("formula")), "formula does not match"),
    ("huge", lambda df: df.with_columns(pl.lit(1e300).alias("value")), "no property values"),
    ("parquet float id", lambda df: df.with_columns(pl.col("proposal_id") + 0.7), "must be integers"),
    ("parquet bool value", lambda df: df.with_columns(pl.lit(True).alias("value")), "must be numbers"),
])
def test_bad_label_files_are_refused_naming_the_problem(al_external, tmp_path, problem, edit, message):
    from matstore import al

    al_store, cid = al_external, 1
    f = tmp_path / ("labels.parquet" if problem.startswith("parquet") else "labels.csv")
    bad = edit(_label_file(al_store, cid, tmp_path / "export.csv"))
    bad.write_parquet(f) if f.suffix == ".parquet" else bad.write_csv(f)
    tables = ["al_labels", "properties", "materials", "sources", "ingests"]
    before = {t: _count(al_store, f"SELECT count(*) FROM {t}") for t in tables}
    with pytest.raises(al.ALError, match=message):
        al.ingest_file(al_store, al.get(al_store, cid), f, "mylab")
    assert {t: _count(al_store, f"SELECT count(*) FROM {t}") for t in tables} == before


def test_labels_never_go_to_a_data_source_and_are_never_overwritten(al_external, tmp_path):
    from matstore import al

    al_store, cid = al_external, 1
    f = tmp_path / "labels.parquet"
    df = _label_file(al_store, cid, tmp_path / "x.csv")
    df.write_parquet(f)
    with pytest.raises(al.ALError, match="base source"):
        al.ingest_file(al_store, al.get(al_store, cid), f, "mp")
    assert al.ingest_file(al_store, al.get(al_store, cid), f, "mylab") == df.height
    assert al.ingest_file(al_store, al.get(al_store, cid), f, "mylab") == 0       # idempotent
    df.with_columns(pl.col("value") + 1).write_parquet(f)
    with pytest.raises(al.ALError, match="never overwritten"):
        al.ingest_file(al_store, al.get(al_store, cid), f, "mylab")
    # all labelled: the round closed, and the next step proposes round 2
    assert al.step(al_store, cid).round_no == 2


def test_targets_and_batch_selection():
    from matstore.al.acquisition import Target, select

    t = Target.parse("range:1:2")
    assert list(t.objective([0.5, 1.5, 3.0])) == [-0.5, 0.0, -1.0]
    with pytest.raises(Exception, match="range:A:B"):
        Target.parse("range:2:1")
    # two identical candidates: the kriging believer does not pick the second copy's twin twice
    mean = np.array([0.0, 0.0, 0.0, 0.0])
    cov = np.array([[1.0, 0.999, 0, 0], [0.999, 1.0, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0.2]])
    picks, _ = select(mean, cov, np.array([11, 12, 0, 14]), 2, kappa=10, noise=1e-3)
    assert picks.tolist() == [0, 2]
    picks, _ = select(mean, cov, np.array([11, 12, 0, 14]), 3, kappa=10, noise=1e-3, exclude={11})
    assert picks[0] == 1


_KILLED_STEP = """
import sys, time
from matstore import al
from matstore.al import loop
from matstore.store import Store

def stall(*a, **k):               # the proposals are committed: wait here to be killed
    print("proposed", flush=True)
    time.sleep(600)

loop.label_round = stall
al.step(Store(sys.argv[1]), 1)
"""


@pytest.mark.slow
def test_campaign_killed_by_sigkill_after_proposing_resumes_without_duplicates(al_store, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from matstore import al

    cid = _start(al_store)
    script = tmp_path / "step.py"
    script.write_text(_KILLED_STEP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(__import__("pathlib").Path(__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(al_store.path)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "proposed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    al_store.forget_prepared()
    props = al.proposals(al_store, cid)
    assert props.height == 20 and props["label"].null_count() == 20
    r = al.step(al_store, cid)
    assert r.resumed and r.round_no == 1 and r.labelled == props["composition_id"].drop_nulls().len()
    assert al.step(al_store, cid).round_no == 2
    allp = al.proposals(al_store, cid)
    assert allp["proposal_id"].n_unique() == allp.height == 40
    comps = allp["composition_id"].drop_nulls()
    assert comps.n_unique() == comps.len()


def test_a_received_store_with_its_own_campaign_merges_under_new_ids(al_master, tmp_path):
    """Two stores each run campaign 1; merging one into the other keeps two campaigns, each with
    its own rounds, proposals and labels (ids remapped, not mixed), and a second merge adds nothing."""
    from matstore import al
    from matstore.merge import merge
    from matstore.store import Store

    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    shutil.copy(al_master, a)
    shutil.copy(al_master, b)
    sa, sb = Store(a), Store(b)
    al.step(sa, _start(sa, seed=0))
    al.step(sb, _start(sb, seed=1))
    theirs = al.proposals(sb, 1)
    merge(sa, b)
    assert _count(sa, "SELECT count(*) FROM al_campaigns") == 2
    assert _count(sa, "SELECT count(DISTINCT autoencoder_id) FROM al_campaigns") == 1   # same ae
    got = al.proposals(sa, 2)
    assert got.height == theirs.height and got["proposal_id"].n_unique() == got.height
    cols = ["round_no", "rank", "formula", "acquisition", "label"]
    assert got.select(cols).sort("rank").equals(theirs.select(cols).sort("rank"))
    assert al.proposals(sa, 1).height == theirs.height            # ours untouched
    assert _count(sa, "SELECT count(*) FROM al_labels WHERE campaign_id = 2") == theirs["label"].drop_nulls().len()
    assert _count(sa, "SELECT count(*) FROM al_rounds") == 2
    before = {t: _count(sa, f"SELECT count(*) FROM {t}") for t in
              ("al_campaigns", "al_rounds", "al_proposals", "al_labels", "latents")}
    merge(sa, b)
    assert before == {t: _count(sa, f"SELECT count(*) FROM {t}") for t in before}


def test_hostile_inputs_are_refused_and_change_nothing(al_external, tmp_path):
    """What a hostile review found: export over the store or through a link, labels filed under a
    data source's name, an ingest into a label source, a received campaign's settings that would
    exhaust memory or cannot be read, a finish whose pool is refused after it trained."""
    import os

    from matstore import al
    from matstore.ingest import run
    from matstore.sources import SourceError

    store, cid = al_external, 1
    c = al.get(store, cid)
    store_bytes = open(store.path, "rb").read()[:4096]
    odd = tmp_path / "st.parquet"                  # a store whose name looks like an export
    shutil.copy(store.path, odd)
    from matstore.store import Store

    with pytest.raises(al.ALError, match="is the store"):
        al.export(Store(odd), c, odd, overwrite=True)
    link = tmp_path / "trap.csv"
    os.symlink(store.path, link)
    with pytest.raises(al.ALError, match="is the store|a link"):
        al.export(store, c, link)
    mine = tmp_path / "mine.csv"
    mine.write_text("keep me")
    with pytest.raises(al.ALError, match="exists.*--overwrite"):
        al.export(store, c, mine)
    assert mine.read_text() == "keep me" and open(store.path, "rb").read()[:4096] == store_bytes
    assert al.export(store, c, mine, overwrite=True) > 0
    with pytest.raises(al.ALError, match="no round 99"):
        al.export(store, c, tmp_path / "r99.csv", round_no=99)

    f = tmp_path / "labels.csv"
    _label_file(store, cid, tmp_path / "x.csv").write_csv(f)
    for name in ("oqmd", "builtin", "icsd", "csv"):
        with pytest.raises(al.ALError, match="name of a data source"):
            al.ingest_file(store, c, f, name)
    assert al.ingest_file(store, c, f, "mylab") > 0
    with pytest.raises(SourceError, match="holds active-learning labels"):
        run(store, "csv", file=str(f), formula_col="formula", source_name="mylab", kind="dft")

    n_models = _count(store, "SELECT count(*) FROM model_versions")
    with pytest.raises(al.ALError, match="threshold"):
        al.finish(store, cid, pool="SELECT composition_id FROM compositions", threshold=float("nan"))
    assert _count(store, "SELECT count(*) FROM model_versions") == n_models   # nothing trained

    with store.transaction() as con:   # a received store's campaign with settings we would not start
        con.execute("UPDATE al_campaigns SET params = json_merge_patch(params, "
                    "'{\"n_candidates\": 1000000000}') WHERE campaign_id = 1")
    with pytest.raises(al.ALError, match="at most 200,000"):
        al.step(store, cid, allow_missing=True)
    with store.transaction() as con:
        con.execute("UPDATE al_campaigns SET params = json_merge_patch(params, '{\"n_candidates\": 400}'), "
                    "target = '{\"goal\": \"range\"}' WHERE campaign_id = 1")
    with pytest.raises(al.ALError, match="range:A:B"):
        al.step(store, cid, allow_missing=True)


@pytest.mark.parametrize("forge, message", [
    ("UPDATE latents SET vector = [1, 2, 3]::FLOAT[] WHERE composition_id = "
     "(SELECT min(composition_id) FROM latents)", "differ in length"),
    ("UPDATE al_labels SET value = 99", "disagree with their proposal"),
    ("UPDATE al_labels SET composition_id = (SELECT min(composition_id) FROM compositions) "
     "WHERE proposal_id = (SELECT min(proposal_id) FROM al_labels)", "disagree with their proposal"),
])
def test_a_received_store_with_forged_active_learning_rows_is_refused(al_master, tmp_path, forge, message):
    from matstore import al
    from matstore.merge import MergeError, merge
    from matstore.store import Store

    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    shutil.copy(al_master, a)
    shutil.copy(al_master, b)
    sb = Store(b)
    al.step(sb, _start(sb, seed=1))
    with sb.transaction() as con:
        con.execute(forge)
    before = open(a, "rb").read()
    with pytest.raises(MergeError, match=message):
        merge(Store(a), b)
    assert open(a, "rb").read() == before


def _independent_posterior(gp, train, pts):
    """Posterior mean and std of the property at pts from scikit-learn given the GP's fitted
    hyperparameters (not from botorch)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel

    from matstore.al import latents

    h = gp.hyperparameters()
    u = gp.box.to_unit(latents.matrix(train))
    yn = (train["value"].to_numpy() - h["y_mean"]) / h["y_std"]
    kernel = ConstantKernel(h["outputscale"], "fixed") * RBF(np.array(h["lengthscale"]), "fixed")
    ref = GaussianProcessRegressor(kernel, alpha=h["noise"], optimizer=None, normalize_y=False)
    ref.fit(u, yn - h["mean"])
    m, s = ref.predict(gp.box.to_unit(pts), return_std=True)
    return (m + h["mean"]) * h["y_std"] + h["y_mean"], s * h["y_std"]


@pytest.mark.parametrize("target, threshold, levels", [("max", 1.5, (1.5,)), ("range:1:3", None, (1.0, 3.0))])
def test_straddle_values_equal_an_independent_computation_from_the_gp_posterior(al_store, target, threshold,
                                                                                levels):
    """straddle = 1.96 std - |mean - nearest level| of the property's posterior (Bryan et al.
    2005): the stored value of the first pick, recomputed with scikit-learn from the GP that
    round fitted; later picks score lower (the batch's believed points shrink the variance)."""
    from matstore import al
    from matstore.al import loop

    # an external oracle: after the step the training set is still the base the round's GP saw
    cid = _start(al_store, "external", acquisition="straddle", target=target, threshold=threshold,
                 base_rows=120)
    c = al.get(al_store, cid)
    assert c.levels == levels and c.models_property
    train = loop.training_set(al_store, c)
    r = al.step(al_store, cid)
    assert r.proposed == 20
    # the round's GP (same data, same seed) models the property itself, even for a range target
    gp, train2, _ = loop.fit_surrogate(al_store, c, seed=int(c.seed) * 100_003 + 1)
    assert train2.equals(train)
    h = gp.hyperparameters()
    assert h["y_mean"] == pytest.approx(train["value"].mean())
    stored_gp = _count(al_store, "SELECT gp FROM al_rounds WHERE campaign_id = ? AND round_no = 1", [cid])
    import json

    assert json.loads(stored_gp)["lengthscale"] == pytest.approx(h["lengthscale"])
    props = al.proposals(al_store, cid)
    with al_store.connect() as con:
        lat = np.array([r[0] for r in con.execute(
            "SELECT latent FROM al_proposals WHERE campaign_id = ? ORDER BY rank", [cid]).fetchall()])
    mean, std = _independent_posterior(gp, train, lat)
    np.testing.assert_allclose(props["mean"].to_numpy(), mean, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(props["std"].to_numpy(), std, rtol=1e-3, atol=1e-3)
    dist = np.min(np.abs(mean[:, None] - np.array(levels)[None, :]), axis=1)
    expect = 1.96 * std - dist
    acqv = props["acquisition"].to_numpy()
    assert acqv[0] == pytest.approx(expect[0], rel=1e-3, abs=1e-3)
    assert (acqv <= expect + 1e-3).all()
    # the picks sit at the boundary: closer to a level than the labelled points are on average
    tmean, _ = gp.posterior(latents_of(train))
    tdist = np.min(np.abs(tmean[:, None] - np.array(levels)[None, :]), axis=1)
    assert np.median(dist) < np.median(tdist)


def latents_of(train):
    from matstore.al import latents

    return latents.matrix(train)


def test_straddle_scores_and_its_levels_are_checked():
    from matstore import al
    from matstore.al.acquisition import Target, score, select, straddle, tracked_levels

    mean, std = np.array([0.0, 3.9, 4.5, 8.0]), np.array([1.0, 0.1, 0.5, 2.0])
    np.testing.assert_allclose(straddle(mean, std, (4.0,)), [1.96 - 4.0, 0.196 - 0.1, 0.98 - 0.5, 3.92 - 4.0])
    # a range: the nearest edge counts
    np.testing.assert_allclose(score("straddle", mean, std, levels=(1.0, 4.0)),
                               [1.96 - 1.0, 0.196 - 0.1, 0.98 - 0.5, 3.92 - 4.0])
    # the greedy batch picks the boundary point first, UCB the extreme one
    cov = np.diag(std ** 2)
    keys = np.array([1, 2, 3, 4])
    assert select(mean, cov, keys, 1, acquisition="straddle", levels=(4.0,))[0].tolist() == [2]
    assert select(mean, cov, keys, 1, acquisition="ucb", kappa=1.0)[0].tolist() == [3]
    # near_levels: local candidates start only from the labelled points nearest a level
    from matstore.al.acquisition import candidates, nearest_to_levels

    y = np.array([0.0, 3.8, 5.0, 4.1, 9.0, 1.0, 2.0, 6.0, 7.0, 8.0])
    assert nearest_to_levels(y, (4.0,), 0.2).tolist() == [1, 3]
    assert nearest_to_levels(y, (1.0, 8.0), 0.01).tolist() == [5]
    x = np.random.default_rng(1).uniform(0.2, 0.8, (10, 6))
    u = candidates(x, 200, np.random.default_rng(2), local_fraction=0.5, step=1e-3, starts=np.array([1, 3]))
    near = np.argmin(((u[100:, None, :] - x[None]) ** 2).sum(-1), axis=1)
    assert set(near.tolist()) == {1, 3}
    assert tracked_levels("straddle", Target.parse("max"), 4) == (4.0,)
    assert tracked_levels("straddle", Target.parse("range:1:2"), None) == (1.0, 2.0)
    assert tracked_levels("ucb", Target.parse("max"), None) == ()
    for acqn, target, thr, msg in [("straddle", "max", None, "needs --threshold"),
                                   ("straddle", "range:1:2", 1.5, "give no --threshold"),
                                   ("ucb", "max", 4.0, "not by 'ucb'"),
                                   ("straddle", "max", float("inf"), "finite")]:
        with pytest.raises(al.ALError, match=msg):
            tracked_levels(acqn, Target.parse(target), thr)


def test_straddle_from_the_cli_is_recorded_and_al_errors_name_the_al_options(al_store):
    from click.testing import CliRunner

    from matstore import al
    from matstore.cli import main

    db = str(al_store.path)

    def cli(*args):
        return CliRunner().invoke(main, ["al", *args, "--db", db])

    start = ["start", "--autoencoder", "ae-t", "--oracle", "model:oracle-t", "--base-rows", "150",
             "--batch-size", "20", "--candidates", "400"]
    res = cli(*start, "--acquisition", "straddle")
    assert res.exit_code == 1 and "needs --threshold" in res.output
    res = cli(*start, "--threshold", "2.5")
    assert res.exit_code == 1 and "not by 'ucb'" in res.output
    res = cli(*start, "--base", "SELECT composition_id FROM nowhere")
    assert res.exit_code == 1 and "--base" in res.output and "--on" not in res.output
    res = cli(*start, "--base", "SELECT composition_id FROM compositions WHERE false")
    assert res.exit_code == 1 and "--base" in res.output and "--on" not in res.output
    assert _count(al_store, "SELECT count(*) FROM al_campaigns") == 0
    res = cli(*start, "--near-levels", "0.2")
    assert res.exit_code == 1 and "--near-levels is for the level-set" in res.output
    res = cli(*start, "--acquisition", "straddle", "--threshold", "2.5", "--near-levels", "1.5")
    assert res.exit_code == 1 and "near_levels" in res.output
    assert _count(al_store, "SELECT count(*) FROM al_campaigns") == 0
    res = cli(*start, "--acquisition", "straddle", "--threshold", "2.5", "--near-levels", "0.25")
    assert res.exit_code == 0, res.output
    c = al.get(al_store, 1)
    assert c.acquisition == "straddle" and c.params["threshold"] == 2.5 and c.kappa == 10.0
    assert c.params["near_levels"] == 0.25
    assert cli("step", "1").exit_code == 0
    n_models = _count(al_store, "SELECT count(*) FROM model_versions")
    res = cli("finish", "1", "--pool", "SELECT composition_id FROM nowhere")
    assert res.exit_code == 1 and "--pool" in res.output and "--where" not in res.output
    assert _count(al_store, "SELECT count(*) FROM model_versions") == n_models   # nothing trained
    # the campaign's threshold is finish's default
    fin = al.finish(al_store, 1, pool="SELECT composition_id FROM composition_sets WHERE set_name = 'al1/base'",
                    n_jobs=1, config={"n_estimators": 5})
    assert fin.n_pool == 150 and 0 < fin.n_candidates < 150
    assert fin.candidates["value"].min() >= 2.5


def test_a_pool_based_campaign_proposes_the_pool_compositions_themselves(al_store):
    """--candidates-from: the candidates are the latents of the selected compositions (here the
    MP rows outside the base, after their materials are set aside as a 'generated' pool); every
    proposal is one of them, proposed once, with its own stored latent; known ones never."""
    from click.testing import CliRunner

    from matstore import al
    from matstore.al import latents
    from matstore.cli import main

    db = str(al_store.path)
    _make_pool(al_store, 300)
    res = CliRunner().invoke(main, ["al", "start", "--db", db, "--autoencoder", "ae-t", "--oracle", "model:oracle-t",
                                    "--acquisition", "straddle", "--threshold", "1.0", "--base-rows", "150",
                                    "--batch-size", "20", "--candidates", "100",
                                    "--candidates-from", "SELECT composition_id FROM pool"])
    assert res.exit_code == 0, res.output
    cid = 1
    assert al.get(al_store, cid).params["candidates_from"] == "SELECT composition_id FROM pool"
    al.run(al_store, cid, rounds=2)
    props = al.proposals(al_store, cid)
    pool = set(al_store.query("SELECT composition_id FROM pool")["composition_id"].to_list())
    ids = props["composition_id"].to_list()
    assert len(ids) == 40 and None not in ids and set(ids) <= pool and len(set(ids)) == 40
    assert props["label"].null_count() < 40
    ae = loop_ae(al_store)
    with al_store.connect() as con:
        got = con.execute("SELECT composition_id, latent FROM al_proposals WHERE campaign_id = ? "
                          "ORDER BY composition_id", [cid]).fetchall()
    enc = latents.ensure(al_store, ae, np.array([g[0] for g in got]))
    np.testing.assert_allclose(np.array([g[1] for g in got]), latents.matrix(enc), rtol=1e-6, atol=1e-6)
    # known compositions are never proposed, even if the pool selection returns them
    for i, sel in enumerate(["SELECT composition_id FROM known UNION ALL SELECT composition_id FROM pool",
                             "SELECT composition_id FROM known"]):
        res = CliRunner().invoke(main, ["al", "start", "--db", db, "--autoencoder", "ae-t", "--oracle",
                                        "model:oracle-t", "--base-rows", "150", "--batch-size", "5",
                                        "--candidates", "5000", "--candidates-from", sel])
        assert res.exit_code == 0, res.output
        if i == 0:
            assert al.step(al_store, 2).proposed == 5
            assert set(al.proposals(al_store, 2)["composition_id"].to_list()) <= pool   # not known
        else:
            with pytest.raises(al.ALError, match="no composition left to propose"):
                al.step(al_store, 3)
    res = CliRunner().invoke(main, ["al", "start", "--db", db, "--autoencoder", "ae-t", "--oracle", "model:oracle-t",
                                    "--candidates-from", "DROP TABLE pool"])
    assert res.exit_code == 1 and "--candidates-from" in res.output
    res = CliRunner().invoke(main, ["al", "start", "--db", db, "--autoencoder", "ae-t", "--oracle", "model:oracle-t",
                                    "--candidates-from", "SELECT composition_id FROM nowhere"])
    assert res.exit_code == 1 and "--candidates-from" in res.output and "nowhere" in res.output
    assert _count(al_store, "SELECT count(*) FROM al_campaigns") == 3


def loop_ae(store):
    from matstore.registry import load_model

    return load_model(store, "ae-t", device="cpu")


def test_a_campaigns_screen_decides_what_it_labelled_by_the_label(al_store, tmp_path):
    """finish screens the pool with the retrained model, but a pool composition the campaign
    labelled (an external oracle: lab or DFT values) is a candidate exactly when its label meets
    the target, whatever the model predicts; the rest by the prediction. Labels chosen far from
    the data (9 eV, 0 eV) so that label and prediction disagree at some threshold."""
    import polars as pl

    from matstore import al

    _make_pool(al_store, 300)
    cid = _start(al_store, "external", acquisition="straddle", threshold=1.0,
                 candidates_from="SELECT composition_id FROM pool")
    al.step(al_store, cid)
    f = tmp_path / "round1.csv"
    al.export(al_store, al.get(al_store, cid), str(f))
    rows = pl.read_csv(f).sort("proposal_id")
    rows = rows.with_columns(value=pl.Series([9.0 if i % 2 else 0.0 for i in range(rows.height)]))
    rows.select("proposal_id", "value").write_csv(f)
    al.ingest_file(al_store, al.get(al_store, cid), str(f), "lab_x", "experiment", None)
    pool_sql = "SELECT composition_id FROM pool"
    fin = al.finish(al_store, cid, pool=pool_sql, threshold=1.0, n_jobs=1, config={"n_estimators": 5})
    # every pool composition with its prediction, and the campaign's labels, read back apart
    n_pool, pred = al.screen(al_store, fin.model, pool_sql, "max", -1e300)
    labels = dict(al_store.query("SELECT composition_id, value FROM al_labels WHERE campaign_id = ?",
                                 [cid]).iter_rows())
    assert len(labels) == rows.height and set(labels) <= set(pred["composition_id"].to_list())
    pred = dict(pred.select("composition_id", "value").iter_rows())
    # thresholds where label and prediction disagree for some labelled composition
    hi = min(pred[k] for k, v in labels.items() if v == 9.0)           # labelled 9: below 9 predicted
    lo = max(pred[k] for k, v in labels.items() if v == 0.0)           # labelled 0: above 0 predicted
    for t in (1.0, (hi + 9.0) / 2, lo / 2):
        n, cand = al.screen_campaign(al_store, cid, fin.model, pool_sql, t)
        assert n == n_pool == 300
        want = {k for k, v in pred.items() if (labels[k] >= t if k in labels else v >= t)}
        assert set(cand["composition_id"].to_list()) == want
        by = dict(cand.select("composition_id", "screened_by").iter_rows())
        assert all((by[k] == "label") == (k in labels) for k in want)
        got = cand.filter(pl.col("label").is_not_null())
        assert all(labels[k] == v for k, v in got.select("composition_id", "label").iter_rows())
        assert set(got["label_source"].to_list()) <= {"lab_x"}
        decided = cand.select(pl.coalesce("label", "value")).to_series().to_numpy()
        assert (np.diff(decided) <= 0).all()                           # best first, by what decided
    # the disagreements are real: at the middle threshold a 9-eV label is in although predicted below
    n, cand = al.screen_campaign(al_store, cid, fin.model, pool_sql, (hi + 9.0) / 2)
    assert any(labels.get(k) == 9.0 and pred[k] < (hi + 9.0) / 2 for k in cand["composition_id"].to_list())
    assert set(fin.candidates["composition_id"].to_list()) == {
        k for k, v in pred.items() if (labels[k] >= 1.0 if k in labels else v >= 1.0)}
