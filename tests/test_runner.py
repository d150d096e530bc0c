"""Runner invariants on real MP compositions with a deterministic replay generator (fast)."""

from __future__ import annotations

import polars as pl
import pytest

from matstore import runner
from _runner_helpers import ReplayGenerator, copy_store, load_compositions, mp_formulas
from _store_data import new_store


@pytest.fixture(scope="module")
def mp_template(tmp_path_factory, read_formulas):
    """3,000 MP and 500 OQMD real compositions (made once; each test gets a copy: mp_store)."""
    store = new_store(tmp_path_factory.mktemp("mp") / "mp.duckdb")
    formulas, values = mp_formulas(read_formulas, 3000)
    load_compositions(store, formulas, "mp", values)
    load_compositions(store, mp_formulas(read_formulas, 500, offset=5000)[0], "oqmd", ingest_id=2)
    return store.path, formulas


@pytest.fixture
def mp_store(mp_template, tmp_path):
    path, formulas = mp_template
    return copy_store(path, tmp_path / "test.duckdb"), formulas


def _content(store, run_id):
    return store.query("SELECT batch_no, sample_no, composition_id FROM generated WHERE run_id = ? "
                       "ORDER BY sample_no", [run_id])


def test_counts_agree_with_independent_recount(mp_store):
    store, formulas = mp_store
    res = runner.generate(store, ReplayGenerator(formulas), 5000, batch_size=700, seed=3,
                          device="cpu", progress=False)
    assert res.status == "done" and res.n_samples == 5000
    raw = store.query("SELECT * FROM generated WHERE run_id = ?", [res.run_id])
    run = runner.run_status(store, res.run_id)
    batches = store.query("SELECT * FROM run_batches WHERE run_id = ?", [res.run_id])
    assert run["status"] == "done" and run["n_requested"] == 5000
    assert run["n_written"] == raw.height == batches["n_decodable"].sum() == res.n_decodable
    assert batches["n_samples"].sum() == 5000 and batches.height == 8
    assert 0.8 * 5000 < raw.height < 0.95 * 5000          # ~10% blank maps are dropped
    assert raw["sample_no"].n_unique() == raw.height and raw["sample_no"].max() < 5000
    # per-batch decodable counts match the raw rows
    per = raw.group_by("batch_no").len().sort("batch_no")
    assert per["len"].to_list() == batches.sort("batch_no")["n_decodable"].to_list()

    cand = store.query("SELECT * FROM candidates")
    recount = raw.group_by("composition_id").agg(pl.len().alias("n"), pl.col("run_id").min().alias("r"))
    joined = recount.join(cand, on="composition_id", how="full", coalesce=True)
    assert joined.height == recount.height == cand.height
    assert (joined["n"] == joined["times_generated"]).all() and (joined["r"] == joined["first_run"]).all()
    # every generated key has a compositions row whose key recomputes from its formula
    from matstore.compositions import parse
    for row in cand.sample(200, seed=1).iter_rows(named=True):
        assert parse(row["formula"]).composition_id == row["composition_id"]
    # novelty against an independent query of the materials table (not the `known` view)
    known = set(store.query("SELECT DISTINCT composition_id FROM materials")["composition_id"].to_list())
    expect_novel = [k not in known for k in cand["composition_id"].to_list()]
    assert cand["novel"].to_list() == expect_novel
    assert 0 < sum(expect_novel) < cand.height
    stats = store.query("SELECT * FROM generation_stats WHERE run_id = ?", [res.run_id]).row(0, named=True)
    assert stats["n_samples"] == 5000 and stats["n_decodable"] == raw.height
    assert stats["n_unique"] == recount.height and stats["n_novel"] == sum(expect_novel)
    curve = store.query("SELECT * FROM uniqueness_curve WHERE run_id = ?", [res.run_id])
    assert curve["samples_drawn"].to_list()[-1] == 5000
    assert curve["unique_compositions"].to_list()[-1] == recount.height
    # cross-source: generated compositions found in the oqmd source, recounted independently
    oqmd = set(store.query("SELECT composition_id FROM materials WHERE source = 'oqmd'")["composition_id"].to_list())
    css = store.query("SELECT * FROM cross_source_confirmation WHERE run_id = ? AND source = 'oqmd'", [res.run_id])
    assert css["n_confirmed"].to_list() == [len(oqmd & set(recount["composition_id"].to_list()))]


def test_same_seed_same_content_other_seed_differs(mp_store):
    store, formulas = mp_store
    gen = ReplayGenerator(formulas)
    a = runner.generate(store, gen, 3000, batch_size=1000, seed=7, device="cpu", progress=False)
    b = runner.generate(store, gen, 3000, batch_size=1000, seed=7, device="cpu", progress=False)
    c = runner.generate(store, gen, 3000, batch_size=1000, seed=8, device="cpu", progress=False)
    assert _content(store, a.run_id).equals(_content(store, b.run_id))
    assert not _content(store, a.run_id).equals(_content(store, c.run_id))
    assert b.n_new_compositions == 0   # everything b drew was already stored by a


def test_interrupted_run_resumes_to_same_content(mp_store):
    store, formulas = mp_store
    full = runner.generate(store, ReplayGenerator(formulas), 4000, batch_size=500, seed=11,
                           device="cpu", progress=False)
    with pytest.raises(KeyboardInterrupt):
        runner.generate(store, ReplayGenerator(formulas, fail_after=3), 4000, batch_size=500,
                        seed=11, device="cpu", progress=False)
    broken = store.query("SELECT max(run_id) AS r FROM runs")["r"][0]
    assert runner.run_status(store, broken)["status"] == "interrupted"
    assert store.query("SELECT count(*) AS n FROM run_batches WHERE run_id = ?", [broken])["n"][0] == 3
    res = runner.resume(store, broken, progress=False, model=ReplayGenerator(formulas))
    assert res.status == "done" and res.n_samples == 2500
    assert _content(store, broken).equals(_content(store, full.run_id))
    run = runner.run_status(store, broken)
    assert run["status"] == "done" and run["n_written"] == _content(store, broken).height


def test_failed_commit_in_the_writer_thread_fails_the_run_and_keeps_earlier_batches(mp_store, monkeypatch):
    """Batch b commits in a writer thread while b + 1 is computed: a commit that fails still
    fails the run with its own error, and the store keeps exactly the batches before it."""
    store, formulas = mp_store
    real = runner.write_batch

    def flaky(con, run_id, batch, new_rows, seconds):
        n = real(con, run_id, batch, new_rows, seconds)
        if batch.batch_no == 2:
            raise OSError("disk full (simulated)")
        return n

    monkeypatch.setattr(runner, "write_batch", flaky)
    with pytest.raises(OSError, match="disk full"):
        runner.generate(store, ReplayGenerator(formulas), 4000, batch_size=500, seed=5,
                        device="cpu", progress=False)
    run_id = store.query("SELECT max(run_id) AS r FROM runs")["r"][0]
    assert runner.run_status(store, run_id)["status"] == "failed"
    assert store.query("SELECT list(batch_no ORDER BY batch_no) b FROM run_batches WHERE run_id = ?",
                       [run_id])["b"][0].to_list() == [0, 1]
    assert store.query("SELECT count(DISTINCT batch_no) n FROM generated WHERE run_id = ?",
                       [run_id])["n"][0] == 2
    monkeypatch.setattr(runner, "write_batch", real)
    runner.resume(store, run_id, progress=False, model=ReplayGenerator(formulas))
    clean = runner.generate(store, ReplayGenerator(formulas), 4000, batch_size=500, seed=5,
                            device="cpu", progress=False)
    assert _content(store, run_id).equals(_content(store, clean.run_id))


def test_bad_arguments(store):
    with pytest.raises(runner.RunError, match="positive"):
        runner.generate(store, ReplayGenerator(["NaCl"]), 0, device="cpu")
    with pytest.raises(runner.RunError, match="no run 99"):
        runner.resume(store, 99)


def test_progress_bar_goes_to_stderr_and_ends_full(store, read_formulas, capsys):
    """stdout carries data: the run's bar (matstore.progress) is drawn on stderr."""
    formulas, _ = mp_formulas(read_formulas, 300)
    res = runner.generate(store, ReplayGenerator(formulas), 600, batch_size=300, seed=1, device="cpu",
                          progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert f"run {res.run_id}" in err and "600/600" in err and "samples/s" in err


class _BlankGenerator(ReplayGenerator):
    """Real compositions' maps scaled below the decode threshold: nothing decodes (a generator
    whose output never reaches 1 - tolerance, like an untrained GAN with a low output bias)."""

    def sample(self, n, generator, device):
        return super().sample(n, generator, device) * 0.1   # 1 -> 0.1 < 0.2


def test_a_run_whose_first_batches_decode_nothing_is_refused_and_keeps_its_batches(mp_store):
    store, formulas = mp_store
    with pytest.raises(runner.RunError, match="decode to no composition.*gan-mp-small.*--tolerance"):
        runner.generate(store, _BlankGenerator(formulas), 5000, batch_size=300, seed=2, device="cpu",
                        progress=False)
    run = store.query("SELECT run_id, status FROM runs ORDER BY run_id DESC LIMIT 1").row(0, named=True)
    assert run["status"] == "failed"
    batches = store.query("SELECT batch_no, n_samples, n_decodable FROM run_batches WHERE run_id = ? "
                          "ORDER BY batch_no", [run["run_id"]])
    # stopped after 2 batches (600 samples >= 200): both committed, none decodable, 5000 not drawn
    assert batches["batch_no"].to_list() == [0, 1]
    assert batches["n_samples"].to_list() == [300, 300]
    assert batches["n_decodable"].sum() == 0
    assert store.query("SELECT count(*) AS n FROM generated WHERE run_id = ?", [run["run_id"]])["n"][0] == 0
    # a generator that decodes some samples passes the same check (ReplayGenerator: 10% blank)
    # one big batch: refused after the first 1,000 samples
    with pytest.raises(runner.RunError, match="first 1,500 samples"):
        runner.generate(store, _BlankGenerator(formulas), 3000, batch_size=1500, seed=2, device="cpu",
                        progress=False)
    ok = runner.generate(store, ReplayGenerator(formulas), 1200, batch_size=300, seed=2, device="cpu",
                         progress=False)
    assert ok.status == "done" and ok.n_decodable > 0
