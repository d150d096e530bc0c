"""Model references resolve in one place (registry.resolve, issue 23): every command that takes a
model imports a shipped one the store lacks (one line says so), NAME#SHA names a version by its
weights in every store, and models can be renamed and deleted (not while predictions use them)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from matstore import pretrained
from matstore.cli import main
from matstore.store import Store
from _store_data import new_store

SHIPPED = pretrained.names()
SMALL_AE = {"latent_dim": 8,
            "encoder": {"convs": [[4, 3, 3, 2, 1], [8, 3, 3, 2, 1], [8, 3, 3, 2, 1], [8, 5, 5, 2, 2]],
                        "norm": "batch"},
            "decoder": {"latent_dim": 8, "fc_channels": 8,
                        "deconvs": [[8, 5, 5, 2, 2], [8, 3, 3, 2, 1], [4, 3, 3, 2, 1], [1, 3, 3, 2, 1]]}}


def _kind(name: str) -> str:
    import polars as pl

    return pl.read_parquet(pretrained.path(name), columns=["kind"])["kind"][0]


def _predicts(name: str) -> str | None:
    import json

    import polars as pl

    hp = pl.read_parquet(pretrained.path(name), columns=["hyperparams"])["hyperparams"][0]
    return json.loads(hp).get("property")


@pytest.fixture(scope="module")
def fresh_master(shared_data, tmp_path_factory):
    """A store of real MP rows (formation energies: the hull's reference; band gaps: AL labels)
    and a tiny autoencoder; no shipped model in it."""
    import torch

    from matstore import training
    from matstore.ingest import run

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("refs") / "fresh.duckdb"
    store = new_store(path)
    run(store, "mp", file=str(shared_data / "mp" / "e_form.csv"),
        props=["formation_energy_per_atom=target:eV/atom"], limit=300)
    run(store, "mp", file=str(shared_data / "mp" / "gap.csv"), props=["band_gap=target:eV"], limit=300)
    training.train(store, "ae", name="ae-t", epochs=1, max_steps=3, batch_size=64, config=SMALL_AE,
                   progress=False, device="cpu", seed=0)
    assert not set(store.query("SELECT name FROM model_versions")["name"]) & set(SHIPPED)
    return path


@pytest.fixture
def fresh(fresh_master, tmp_path):
    p = tmp_path / "s.duckdb"
    shutil.copy(fresh_master, p)
    return Store(p)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _n(store, sql, params=None) -> int:
    with store.connect() as con:
        return con.execute(sql, params or []).fetchall()[0][0]


@pytest.mark.parametrize("name", SHIPPED)
def test_predict_takes_every_shipped_name_on_a_fresh_store(fresh, name):
    res = _run("predict", "--db", fresh.path, "--model", name, "--no-progress")
    assert f"imported the shipped model {name}@1" in res.output and "checked" in res.output, res.output
    if _predicts(name):
        assert res.exit_code == 0, res.output
        assert _n(fresh, "SELECT count(*) FROM predictions p JOIN model_versions m USING (model_id) "
                         "WHERE m.name = ?", [name]) > 0
    else:   # a generator: resolved and imported, then refused by what it is
        assert res.exit_code == 1 and f"is a {_kind(name)}, not a property predictor" in res.output


@pytest.mark.parametrize("name", SHIPPED)
def test_stability_model_takes_every_shipped_name_on_a_fresh_store(fresh, name):
    _run("predict", "--db", fresh.path, "--model", name, "--no-progress")
    res = _run("stability", "--db", fresh.path, "--model", name, "--reference", "mp", "--no-progress")
    if _predicts(name) == "formation_energy_per_atom":
        assert res.exit_code == 0, res.output
        assert _n(fresh, "SELECT count(*) FROM stability s JOIN model_versions m USING (model_id) "
                         "WHERE m.name = ?", [name]) > 0
    else:   # imported and named; refused because the hull needs formation energies
        assert res.exit_code == 1 and f"model {name}@1 predicts" in res.output, res.output


@pytest.mark.parametrize("generator", [n for n in SHIPPED if not _predicts(n)])
def test_generate_with_shipped_predictors_and_stability_on_a_fresh_store(fresh, generator):
    predictors = [n for n in SHIPPED if _predicts(n)]
    args = ["generate", "--db", fresh.path, "--model", generator, "-n", 64, "--no-progress"]
    for p in predictors:
        args += ["--predict", p]
    res = _run(*args, "--stability", "mp")
    assert res.exit_code == 0, res.output
    for name in [generator, *predictors]:
        assert f"imported the shipped model {name}@1" in res.output
    for p in predictors:
        assert _n(fresh, "SELECT count(*) FROM predictions p JOIN model_versions m USING (model_id) "
                         "WHERE m.name = ?", [p]) > 0
    assert _n(fresh, "SELECT count(*) FROM stability WHERE model_id > 0") > 0


@pytest.mark.parametrize("oracle", [n for n in SHIPPED if _predicts(n)])
def test_al_start_with_a_shipped_oracle_on_a_fresh_store(fresh, oracle):
    prop = _predicts(oracle)
    res = _run("al", "start", "--db", fresh.path, "--autoencoder", "ae-t", "--oracle", f"model:{oracle}",
               "--property", prop, "--base-source", "mp", "--base-rows", 40, "--batch-size", 5,
               "--candidates", 50)
    assert res.exit_code == 0, res.output
    assert f"imported the shipped model {oracle}@1" in res.output
    assert _n(fresh, "SELECT count(*) FROM al_campaigns WHERE oracle_model_id = "
                     "(SELECT model_id FROM model_versions WHERE name = ?)", [oracle]) == 1


@pytest.mark.parametrize("name", SHIPPED)
def test_models_show_and_export_take_every_shipped_name_on_a_fresh_store(fresh, name, tmp_path):
    """`models show` / `models export` resolve like every other command: a shipped name the store
    lacks is imported (one line), then shown / exported with the shipped file's weights."""
    import json

    import polars as pl

    other = Store(shutil.copy(fresh.path, tmp_path / "other.duckdb"))   # fresh, for the export
    res = _run("models", "show", name, "--db", fresh.path)
    assert res.exit_code == 0, res.output
    assert f"imported the shipped model {name}@1" in res.stderr and "checked" in res.stderr, res.output
    shown = json.loads(res.stdout)
    shipped = pl.read_parquet(pretrained.path(name), columns=["weights_sha256"])["weights_sha256"][0]
    assert shown["name"] == name and shown["weights_sha256"] == shipped
    # export from the other fresh copy: imported there too, and the file holds those weights
    out = tmp_path / f"{name}.parquet"
    res = _run("models", "export", out, name, "--db", other.path)
    assert res.exit_code == 0, res.output
    assert res.output.count(f"imported the shipped model {name}@1") == 1, res.output
    assert pl.read_parquet(out, columns=["name", "weights_sha256"]).rows() == [(name, shipped)]


def test_an_unknown_model_names_the_stores_and_the_shipped_models(fresh):
    for args in (["predict", "--model", "nope"], ["stability", "--model", "nope", "--reference", "mp"],
                 ["generate", "--model", "nope", "-n", 4]):
        res = _run(*args, "--db", fresh.path)
        assert res.exit_code == 1 and "no model 'nope'" in res.output, res.output
        assert "ae-t" in res.output and all(s in res.output for s in SHIPPED), res.output


def test_a_weights_hash_names_a_version_in_every_store_and_rename_delete(fresh, tmp_path):
    from matstore.registry import delete, export_models, import_models, rename, resolve, ModelError

    here = resolve(fresh, "ae-t")
    out = tmp_path / "ae.parquet"
    export_models(fresh, out, ["ae-t"])
    other = new_store(tmp_path / "other.duckdb")
    import_models(other, out)
    assert rename(other, "ae-t", "ae-renamed") == 1
    import_models(other, out)            # a second copy, now ae-t@1 again in `other`
    sha = here.record["weights_sha256"][:12]
    there = resolve(other, f"ae-renamed#{sha}")
    assert there.record["weights_sha256"] == here.record["weights_sha256"]
    assert here.identity == f"ae-t@1#{sha}" and there.identity == f"ae-renamed@1#{sha}"
    assert other.query("SELECT identity FROM model_refs WHERE name = 'ae-renamed'")["identity"][0] == there.identity
    assert resolve(other, f"#{sha}").model_id == resolve(other, "ae-t@1").model_id   # the newest copy
    with pytest.raises(ModelError, match="8 to 64 hex digits"):
        resolve(other, "ae-t#xyz")
    assert delete(other, "ae-renamed@1") == f"ae-renamed@1#{sha}"
    with pytest.raises(ModelError, match="no model 'ae-renamed'"):
        resolve(other, "ae-renamed")
    # a version that predictions use is not deleted
    res = _run("predict", "--db", fresh.path, "--model", SHIPPED_FE, "--no-progress")
    assert res.exit_code == 0, res.output
    res = _run("models", "delete", f"{SHIPPED_FE}@1", "--db", fresh.path)
    assert res.exit_code == 1 and "predictions rows" in res.output and "nothing was deleted" in res.output
    res = _run("models", "rename", SHIPPED_FE, "ae-t", "--db", fresh.path)
    assert res.exit_code == 1 and "is taken" in res.output
    res = _run("models", "rename", "ae-t", "ae-small", "--db", fresh.path)
    assert res.exit_code == 0 and "renamed 1 version(s) of ae-t to ae-small" in res.output
    assert _n(fresh, "SELECT count(*) FROM composition_sets WHERE starts_with(set_name, 'ae-small@1/')") > 0


SHIPPED_FE = next(n for n in SHIPPED if _predicts(n) == "formation_energy_per_atom")
