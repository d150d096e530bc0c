"""The shipped-model mechanism: a manifest entry checked by sha256, import into a fresh store,
`ensure` importing a shipped model only when the store has none of that name."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from matstore import pretrained
from matstore.cli import main
from matstore.compositions import CompositionBatch
from matstore import models
from matstore.registry import export_models, load_model, save_model
from matstore.store import Store
from _store_data import new_store


def _elemnet(seed: int):
    import torch

    torch.manual_seed(seed)
    m = models.build("elemnet", {"n_inputs": 86})
    m.fit_scaling(np.zeros((2, 86)), np.array([-1.0, 1.0]), minmax=False)
    return m.eval()


def _save(store, name, module):
    return save_model(store, name, "elemnet", module, models.config_dict(module.config),
                      {"property": "formation_energy_per_atom", "featurizer": "fractions"},
                      "SELECT 1", 10, "abc", {"seed": 0}, {"test": {"mae": 0.1}}, "cpu", 0)


@pytest.fixture
def shipped(tmp_path, monkeypatch, store):
    """A package folder holding one exported model and its manifest entry."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    monkeypatch.setattr(pretrained, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(pretrained, "MANIFEST", pkg / "MANIFEST.json")
    _save(store, "fe-shipped", _elemnet(7))
    export_models(store, pkg / "fe-shipped.parquet", ["fe-shipped@1"])
    pretrained.record("fe-shipped", pkg / "fe-shipped.parquet", model="fe-shipped@1",
                      script="tests/test_pretrained.py", data={"none": "0"}, selection="SELECT 1",
                      metrics={"test": {"mae": 0.1}})
    return store


def test_import_into_a_fresh_store_predicts_the_same(shipped, tmp_path, read_formulas):
    batch = CompositionBatch.from_formulas(
        read_formulas("oqmd/formation_enthalpy_train.csv")["formula"].to_list()[:100])
    fresh = new_store(tmp_path / "fresh.duckdb")
    assert pretrained.names() == ["fe-shipped"]
    assert pretrained.ensure(fresh, "fe-shipped@1") is True
    assert pretrained.ensure(fresh, "fe-shipped") is False          # already there
    assert pretrained.ensure(fresh, "not-shipped") is False
    a, b = load_model(shipped, "fe-shipped"), load_model(fresh, "fe-shipped")
    assert a.record["weights_sha256"] == b.record["weights_sha256"]
    assert np.array_equal(a.predict(batch), b.predict(batch))


def test_a_changed_shipped_file_is_refused(shipped, tmp_path):
    f = pretrained.PACKAGE_DIR / "fe-shipped.parquet"
    f.write_bytes(f.read_bytes() + b"x")
    with pytest.raises(pretrained.PretrainedError, match="does not match its manifest"):
        pretrained.import_pretrained(new_store(tmp_path / "fresh.duckdb"), "fe-shipped")
    with pytest.raises(pretrained.PretrainedError, match="no pretrained model 'nope'.*fe-shipped"):
        pretrained.path("nope")


def test_cli_lists_and_imports(shipped, tmp_path):
    db = str(tmp_path / "cli.duckdb")
    new_store(db)
    r = CliRunner().invoke(main, ["models", "pretrained", "--csv"])
    assert r.exit_code == 0 and "fe-shipped,fe-shipped@1" in r.output
    r = CliRunner().invoke(main, ["models", "import", "--pretrained", "fe-shipped", "--db", db])
    assert r.exit_code == 0, r.output
    assert load_model(Store(db), "fe-shipped").version == 1
    r = CliRunner().invoke(main, ["models", "import", "--db", db])
    assert r.exit_code != 0 and "one of them" in r.output


def test_a_store_model_under_a_shipped_name_with_other_weights_warns(shipped, tmp_path):
    fresh = new_store(tmp_path / "fresh.duckdb")
    _save(fresh, "fe-shipped", _elemnet(8))          # same name, other weights
    with pytest.warns(pretrained.ShadowedPretrainedWarning, match="not the one that ships"):
        assert pretrained.ensure(fresh, "fe-shipped") is False
    pretrained.import_pretrained(fresh, "fe-shipped")   # now the shipped weights are there too
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", pretrained.ShadowedPretrainedWarning)
        assert pretrained.ensure(fresh, "fe-shipped") is False


def test_a_shipped_file_over_eight_mib_is_refused(shipped):
    assert pretrained.MAX_FILE_BYTES == 8 * 2**20      # issue 30: a shipped model file may take 8 MiB
    big = pretrained.PACKAGE_DIR / "big.parquet"
    big.write_bytes(b"\0" * (pretrained.MAX_FILE_BYTES + 1))
    with pytest.raises(pretrained.PretrainedError, match="stays under 8 MiB"):
        pretrained.record("big", big, model="big@1", script="x", data={}, selection="", metrics={})
    assert "big" not in pretrained.manifest()


def test_a_retrained_shipped_model_is_a_new_version_and_a_store_keeps_the_old(shipped, tmp_path,
                                                                             read_formulas):
    """Re-recording a name with other weights keeps the old entry under ``previous``; a store that
    imported the old version keeps it (and is told, not warned of a foreign model); importing the
    shipped name then adds the new weights as version 2 beside it."""
    batch = CompositionBatch.from_formulas(
        read_formulas("oqmd/formation_enthalpy_train.csv")["formula"].to_list()[:50])
    old_store = new_store(tmp_path / "old.duckdb")
    pretrained.import_pretrained(old_store, "fe-shipped")
    old_pred = load_model(old_store, "fe-shipped@1").predict(batch)
    old_weights = pretrained.shipped_weights("fe-shipped")

    _save(shipped, "fe-shipped", _elemnet(9))        # the retrained model (fe-shipped@2 there)
    export_models(shipped, pretrained.PACKAGE_DIR / "fe-shipped.parquet", ["fe-shipped@2"], overwrite=True)
    e = pretrained.record("fe-shipped", pretrained.PACKAGE_DIR / "fe-shipped.parquet", model="fe-shipped@2",
                          script="tests/test_pretrained.py", data={"none": "0"}, selection="SELECT 1",
                          metrics={"test": {"mae": 0.05}, "val": {"mae": 0.06}})
    assert set(e["weights_sha256"]) == pretrained.shipped_weights("fe-shipped") != old_weights
    (prev,) = e["previous"]
    assert prev["model"] == "fe-shipped@1" and set(prev["weights_sha256"]) == old_weights
    assert prev["metrics"] == {"test": {"mae": 0.1}}
    assert pretrained.previous_weights("fe-shipped") == old_weights

    with pytest.warns(pretrained.OlderPretrainedWarning, match="earlier shipped version"):
        assert pretrained.ensure(old_store, "fe-shipped") is False   # kept, not replaced
    assert load_model(old_store, "fe-shipped").version == 1
    pretrained.import_pretrained(old_store, "fe-shipped")
    new = load_model(old_store, "fe-shipped")
    assert new.version == 2 and new.record["weights_sha256"] in pretrained.shipped_weights("fe-shipped")
    assert np.array_equal(load_model(old_store, "fe-shipped@1").predict(batch), old_pred)
    assert not np.array_equal(new.predict(batch), old_pred)
    # recording the same weights again keeps the history as it is
    again = pretrained.record("fe-shipped", pretrained.PACKAGE_DIR / "fe-shipped.parquet",
                              model="fe-shipped@2", script="x", data={}, selection="", metrics={})
    assert again["previous"] == e["previous"]


def test_only_shipped_model_files_exceed_the_one_mib_of_a_tracked_file():
    """The 8 MiB limit is for the model files the manifest lists; everything else tracked in the
    repository stays under 1 MiB (data lives in ../shared/data)."""
    import shutil
    import subprocess
    from pathlib import Path

    repo = Path(pretrained.__file__).resolve().parents[2]
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    files = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True,
                           check=True).stdout.decode().split("\0")
    shipped = {f"matstore/pretrained/{e['file']}" for e in pretrained.manifest().values()}
    assert shipped <= set(files)
    sizes = {f: (repo / f).stat().st_size for f in files if f and (repo / f).is_file()}
    assert {f: n for f, n in sizes.items() if n > 2**20 and f not in shipped} == {}
    assert max(sizes[f] for f in shipped) <= pretrained.MAX_FILE_BYTES
