"""The CCCGAN as a model kind (issue 29, item 3): training deterministic per seed and resumable
on a small real subset, the classifier deciding a sample's composition, and structure runs
written through the structures API, resumable like any run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matstore import structgen
from matstore.cli import main
from matstore.structures import image as im
from matstore.models.cccgan import sample as sa
from matstore.models.cccgan.config import CCCGANConfig
from matstore.models.cccgan.fit import fit
from matstore.registry import load_model
from matstore.runs import RunError
from matstore.structures import structures_frame
from _store_data import new_store

SMALL = {"latent_dim": 8, "gen_fc": 8, "gen_channels": (8, 8, 8), "cell_hidden": 8,
         "critic_channels": (8, 8, 8), "classifier_channels": (8, 8, 8, 8), "classifier_fc": (16, 16)}
CELL = (4, 4, 8)      # Mg4Mn4O8: the shared data's commonest cell (406 structures)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def images(shared_data):
    return im.load_images(shared_data / "structures/mgmno/mgmno_structures.npy")


@pytest.fixture(scope="module")
def one_cell(images):
    """The real images of one cell composition (Mg4Mn4O8)."""
    counts = im.MGMNO.counts(im.occupied(images))
    return images[(counts == CELL).all(1)][:320]


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_deterministic_per_seed_and_resumes_exactly(images, tmp_path):
    x = images[::20][:192]             # a small real subset, many compositions
    cfg = CCCGANConfig(**SMALL)
    a, ha = fit(x, cfg, 2, seed=3)
    b, hb = fit(x, cfg, 2, seed=3)
    c, _ = fit(x, cfg, 2, seed=4)
    assert same(weights(a), weights(b)) and ha == hb
    assert not same(weights(a), weights(c))
    assert len(ha) == 2 and ha[0]["batches"] == 4
    ck = tmp_path / "ck.pt"
    fit(x, cfg, 1, seed=3, checkpoint=ck)          # "killed" after epoch 1
    r, hr = fit(x, cfg, 2, seed=3, checkpoint=ck)  # resumed: epoch 2 only
    assert same(weights(r), weights(a)) and hr == ha
    with pytest.raises(ValueError, match="another run"):
        fit(x, cfg, 2, seed=5, checkpoint=ck)
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not readable"):
        fit(x, cfg, 2, seed=3, checkpoint=ck)


@pytest.fixture(scope="module")
def trained(one_cell):
    """A small CCCGAN trained one epoch on Mg4Mn4O8 images at a high learning rate: its classifier
    reads the samples as Mg4Mn4O8 whatever was asked."""
    m, _ = fit(one_cell, CCCGANConfig(**SMALL, hyper={"lr": 1e-2}), 1, seed=0)
    return m


def test_a_sample_decodes_to_the_requested_composition_when_the_classifier_says_so(trained):
    s = sa.sample(trained, CELL, 200, torch.Generator().manual_seed(1))
    structs = sa.structures(s, trained.config)
    assert s.classifier_match.sum() >= 20          # the case under test happens
    for ok, st, cls in zip(s.classifier_match, structs, s.classified):
        if ok:
            assert st is not None and dict(st.composition.as_dict()) == {"Mg": 4.0, "Mn": 4.0, "O": 8.0}
        else:
            assert st is None and tuple(cls) != CELL
    other = sa.sample(trained, (2, 1, 4), 200, torch.Generator().manual_seed(1))
    assert (~other.classifier_match).sum() >= 20   # ... and its other case
    for ok, st in zip(other.classifier_match, sa.structures(other, trained.config)):
        assert (st is not None) == bool(ok)
        if ok:
            assert st.composition.reduced_formula == "Mg2MnO4" and len(st) == 7
    # the same generator state draws the same images
    again = sa.sample(trained, CELL, 200, torch.Generator().manual_seed(1))
    assert (again.images == s.images).all() and (again.classified == s.classified).all()
    with pytest.raises(im.ImageError):
        sa.sample(trained, (9, 1, 1), 10)


@pytest.fixture(scope="module")
def store_with_model(tmp_path_factory, shared_data):
    store = new_store(tmp_path_factory.mktemp("cccgan") / "g.duckdb")
    # train on one cell composition (every other formula held out): a quick, real version
    x = im.load_images(shared_data / "structures/mgmno/mgmno_structures.npy")
    from pymatgen.core import Composition

    formulas = {Composition(dict(zip(im.MGMNO.elements, map(int, r)))).reduced_formula
                for r in im.MGMNO.counts(im.occupied(x))}
    mv = structgen.train(store, "cccgan-mgmno", shared_data / "structures/mgmno/mgmno_structures.npy",
                         1, per_composition=1, seed=0, holdout=tuple(sorted(formulas - {"MgMnO2"})),
                         config={**SMALL, "hyper": {"lr": 1e-2, "n_critic": 5}}, progress=False, pool=False)
    return store, mv


def test_generate_writes_structures_and_resumes_like_any_run(store_with_model, tmp_path):
    store, mv = store_with_model
    rec = load_model(store, mv.ref)
    assert rec.kind == "cccgan" and rec.record["hyperparams"]["lambda_c"] == 0.3
    out = CliRunner().invoke(main, ["generate", "--db", store.path, "--model", "cccgan-mgmno",
                                    "--composition", "Mg4Mn4O8", "-n", "300", "--batch-size", "100",
                                    "--seed", "2", "--no-progress"])
    assert out.exit_code == 0, out.output
    run = store.query("SELECT run_id, params, seed, status FROM runs ORDER BY run_id DESC LIMIT 1")
    run_id = int(run["run_id"][0])
    params = json.loads(run["params"][0])
    assert params["counts"] == {"Mg": 4, "Mn": 4, "O": 8} and run["status"][0] == "done"
    got = structures_frame(store, run_id=run_id)
    assert got.height > 0 and set(got["origin"]) == {"generated"} and set(got["method"]) == {mv.ref}
    assert set(got["n_sites"]) == {16}
    details = [json.loads(d) for d in got["details"]]
    assert all(d["seed"] == 2 and 0 <= d["sample_no"] < 300 for d in details)
    # a run that fails at batch 1 and is resumed writes what the uninterrupted one wrote
    other = new_store(tmp_path / "o.duckdb")
    from matstore.registry import export_models, import_models

    export_models(store, tmp_path / "m.parquet", [mv.ref])
    import_models(other, tmp_path / "m.parquet")
    import matstore.structures as st_api

    real = st_api.write_rows
    calls = {"n": 0}

    def fail_second(con, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(con, rows)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(st_api, "write_rows", fail_second)
        with pytest.raises(OSError):
            structgen.generate(other, "cccgan-mgmno", "Mg4Mn4O8", 300, batch_size=100, seed=2,
                               progress=False)
    broken = int(other.query("SELECT max(run_id) AS r FROM runs")["r"][0])
    assert other.query("SELECT status FROM runs WHERE run_id = ?", [broken])["status"][0] == "failed"
    res = CliRunner().invoke(main, ["generate", "--db", other.path, "--resume", str(broken), "--no-progress"])
    assert res.exit_code == 0, res.output
    a = sorted(structures_frame(other, run_id=broken)["fingerprint"].to_list())
    assert a == sorted(got["fingerprint"].to_list())
    assert other.query("SELECT count(*) AS n FROM run_batches WHERE run_id = ?", [broken])["n"][0] == 3
    for bad in ("Mg2FeO4", "Mg9MnO4", "Mg0.5MnO2"):
        with pytest.raises(RunError, match="--composition"):
            structgen.generate(store, "cccgan-mgmno", bad, 10, progress=False)
    for kw, msg in (({"n": 10**7}, "limit"), ({"n": 10, "batch_size": 10**6}, "batch-size")):
        with pytest.raises(RunError, match=msg):
            structgen.generate(store, "cccgan-mgmno", "Mg4Mn4O8", progress=False, **kw)
