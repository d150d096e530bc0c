"""The generators that ship (issue 14, item 5; scripts/pretrain_generators.py): each imports into
a fresh store and draws exactly the compositions the exported version drew with the same seed
(the manifest's sample check, computed in the training store), and `generate --model NAME` works
on a store that never trained anything."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matstore import models, pretrained, runner
from matstore.cli import main
from matstore.store import Store
from _runner_helpers import copy_store
from _store_data import new_store

SHIPPED = ["transformer-mp", "gan-mp-small"]


@pytest.fixture(autouse=True)
def one_thread():
    """The sample checks were drawn with 1 torch thread (scripts/pretrain_generators.py)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_generator_redraws_the_exported_versions_compositions(name, tmp_path, shared_data):
    e = pretrained.entry(name)
    assert e["bytes"] < 8 * 2**20                       # a few MB at most
    assert e["data"]["mp/e_form.csv"] == pretrained.sha256_file(shared_data / "mp/e_form.csv")
    lo = pretrained.PACKAGE_DIR / e["leave_out"]["file"]
    assert pretrained.sha256_file(lo) == e["leave_out"]["sha256"]
    assert len(lo.read_text().split()) == e["leave_out"]["n"] > 1000
    fresh = new_store(tmp_path / "fresh.duckdb")
    res = pretrained.import_pretrained(fresh, name)
    (mv,) = res.imported
    assert mv.kind in models.GENERATOR_KINDS and mv.ref == e["model"]
    chk = e["sample_check"]
    r = runner.generate(fresh, mv.ref, chk["n"], batch_size=chk["batch_size"], seed=chk["seed"],
                        device="cpu", progress=False)
    ids = fresh.query("SELECT composition_id FROM generated WHERE run_id = ? ORDER BY sample_no",
                      [r.run_id])["composition_id"].to_numpy()
    assert r.n_decodable == chk["n_decodable"] > chk["n"] // 2
    assert hashlib.sha256(ids.astype("<i8").tobytes()).hexdigest() == chk["composition_ids_sha256"]


def test_generate_names_a_shipped_generator_in_a_store_that_never_trained(tmp_path):
    db = tmp_path / "new.duckdb"
    new_store(db)
    out = CliRunner().invoke(main, ["generate", "--db", str(db), "--model", "transformer-mp",
                                    "-n", "3000", "--seed", "2", "--no-progress"])
    assert out.exit_code == 0, out.output
    st = Store(db).query("SELECT n_samples, n_decodable, n_unique FROM generation_stats")
    assert st["n_samples"][0] == 3000 and st["n_decodable"][0] == 3000 and st["n_unique"][0] > 2500


@pytest.fixture(scope="module")
def mp_ingested(tmp_path_factory, shared_data):
    """All of mp/e_form.csv ingested with MatGAN's curation, nothing trained (made once: the
    132k-row ingest is most of a test's time; each test imports into a copy)."""
    from matstore.curation import Curation
    from matstore.ingest import run as ingest

    store = new_store(tmp_path_factory.mktemp("mp") / "mp.duckdb")
    ingest(store, "mp", Curation.matgan(), file=str(shared_data / "mp/e_form.csv"),
           props=["formation_energy_per_atom=target:eV/atom"])
    return store.path


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_generators_leave_out_set_comes_with_it_and_is_its_split(name, tmp_path, shared_data,
                                                                          mp_ingested):
    """Importing a shipped generator stores its left-out formulas as the version's holdout set;
    they are exactly the val + test rows of the split the script made, recomputed here from the
    shared data (MatGAN curation, the valid-only filter where the version used it, the seeded
    permutation), and `quality` then measures leave-out recovery in a store that never trained."""
    from matstore import quality
    from matstore.featurize import validate_store
    from matstore.training import data

    store = copy_store(mp_ingested, tmp_path / "s.duckdb")
    assert store.query("SELECT count(*) AS n FROM model_versions")["n"][0] == 0
    pretrained.import_pretrained(store, name)
    e = pretrained.entry(name)
    model_id = store.query("SELECT model_id FROM model_versions WHERE name = ?", [name])["model_id"][0]
    sets = store.query("SELECT composition_id, role, set_name FROM composition_sets WHERE model_id = ?",
                       [model_id])
    assert set(sets["role"]) == {"holdout"} and set(sets["set_name"]) == {f"{name}/leave-out"}
    got = set(sets["composition_id"].to_list())
    assert len(got) == sets.height == e["leave_out"]["n"]

    ids = store.query("SELECT DISTINCT composition_id FROM materials WHERE source = 'mp' ORDER BY 1")
    ids = ids["composition_id"].to_numpy()
    if e.get("valid_only"):
        validate_store(store, progress=False)
        assert store.query("SELECT checker_version FROM validity_checkers WHERE is_default")[
            "checker_version"][0] == e["valid_only"]["checker_version"]
        ok = store.query("SELECT composition_id FROM composition_validity WHERE charge_neutral "
                         "AND electronegativity_balanced")["composition_id"].to_numpy()
        ids = ids[np.isin(ids, ok)]
    sp = data.split(len(ids), e["split"]["seed"], tuple(e["split"]["fractions"]))
    assert len(sp.train) == e["split"]["n_train"]
    assert got == set(ids[sp.val].tolist()) | set(ids[sp.test].tolist())

    r = runner.generate(store, name, 4000, batch_size=2000, seed=0, device="cpu", progress=False)
    row = quality.measure(store, r.run_id)
    drawn = set(store.query("SELECT composition_id FROM generated WHERE run_id = ?",
                            [r.run_id])["composition_id"].to_list())
    assert row["leave_out_size"] == len(got) and row["leave_out_recovered"] == len(got & drawn)
    assert pretrained.import_leave_out(store, name) == 0          # once
