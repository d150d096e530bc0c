"""The generators that ship (issue 14, item 5; scripts/pretrain_generators.py): each imports into
a fresh store and draws exactly the compositions the exported version drew with the same seed
(the manifest's sample check, computed in the training store), and `generate --model NAME` works
on a store that never trained anything."""

from __future__ import annotations

import hashlib

import pytest
import torch
from click.testing import CliRunner

from matstore import models, pretrained, runner
from matstore.cli import main
from matstore.store import Store

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
    fresh = Store.init(tmp_path / "fresh.duckdb")
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
    Store.init(db)
    out = CliRunner().invoke(main, ["generate", "--db", str(db), "--model", "transformer-mp",
                                    "-n", "3000", "--seed", "2", "--no-progress"])
    assert out.exit_code == 0, out.output
    st = Store(db).query("SELECT n_samples, n_decodable, n_unique FROM generation_stats")
    assert st["n_samples"][0] == 3000 and st["n_decodable"][0] == 3000 and st["n_unique"][0] > 2500
