"""Issue 15, item 3: a file that explains itself to someone with plain DuckDB (or polars/Spark).
Every table, column and view has a comment; each model version has a card readable with SQL and
inside its weights; a Parquet export carries the views' SQL and a manifest that rebuilds them;
docs/file-format.md is generated from the comments and current."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import torch

from _runner_helpers import ReplayGenerator, copy_store, load_compositions, mp_formulas
from _store_data import fill, new_store
from matstore import fileformat, runner
from matstore.export import ExportError, export_parquet
from matstore.featurize import validate_store
from matstore.features import get as featurizer
from matstore.registry import WEIGHTS_FORMAT, load_model
from matstore.store import Store, append, create_views, view_definitions
from matstore.training import train

torch.set_num_threads(1)   # a shared 2-core box (as tests/test_training.py)
DOC = Path(__file__).resolve().parents[1] / "docs" / "file-format.md"


def _uncommented(con) -> list[str]:
    """'table', 'table.column' and 'view' names whose comment is missing or blank."""
    db = "database_name = current_database() AND schema_name = 'main'"
    rows = con.execute(f"""
        SELECT 'table ' || table_name FROM duckdb_tables() WHERE {db} AND coalesce(trim(comment), '') = ''
        UNION ALL
        SELECT 'column ' || table_name || '.' || column_name FROM duckdb_columns()
        WHERE {db} AND table_name IN (SELECT table_name FROM duckdb_tables() WHERE {db})
          AND coalesce(trim(comment), '') = ''
        UNION ALL
        SELECT 'view ' || view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary
          AND {db} AND coalesce(trim(comment), '') = ''""").fetchall()
    return sorted(r[0] for r in rows)


def test_every_table_column_and_view_of_a_fresh_store_has_a_comment(tmp_path):
    store = new_store(tmp_path / "fresh.duckdb")
    con = duckdb.connect(store.path, read_only=True)   # plain DuckDB, no matstore on the way
    try:
        assert _uncommented(con) == []
        n_tables, n_views = con.execute(
            "SELECT (SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()), "
            "(SELECT count(*) FROM duckdb_views() WHERE NOT internal AND database_name = current_database())"
            ).fetchall()[0]
        assert n_tables >= 15 and n_views == len(view_definitions())
        comment = dict(con.execute("SELECT table_name || '.' || column_name, comment FROM duckdb_columns() "
                                   "WHERE database_name = current_database()").fetchall())
        views = dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    finally:
        con.close()
    # units where a value has one; views say the question they answer (their sql header)
    assert "eV/atom" in comment["properties.value"] and "eV" in comment["predictions.value"]
    assert "(s)" in comment["run_batches.seconds"] and "rows/s" in comment["runs.rows_per_s"]
    assert views["candidates"].startswith("Which distinct compositions have the generators produced")
    assert "--" not in views["candidates"] and views["model_cards"].startswith("What is each trained model")
    # the TEMP views a read connection makes over a received file carry the comments as well
    with store.connect() as rc:
        create_views(rc, temp=True)
        temp = dict(rc.execute("SELECT view_name, comment FROM duckdb_views() WHERE temporary AND NOT internal").fetchall())
    assert set(temp) == set(view_definitions()) and temp == {k: views[k] for k in temp}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, read_formulas) -> tuple[Store, dict]:
    """Real OQMD formation energies and ICSD formulas; a tiny ElemNet on the 218 fractions+magpie
    inputs, a tiny forest, a tiny GAN."""
    store = new_store(tmp_path_factory.mktemp("cards") / "c.duckdb")
    fill(store, "oqmd", read_formulas("oqmd/formation_enthalpy_train.csv").head(300),
         "formation_energy_per_atom", ingest_id=1)
    fill(store, "icsd", read_formulas("matgan/gan_icsd_generated_1024.csv").head(150), None, ingest_id=2)
    mvs = {"elemnet": train(store, "elemnet-magpie-fe", epochs=2, max_steps=3, batch_size=64,
                            device="cpu", seed=0, progress=False),
           "rf": train(store, "rf-fe", n_jobs=1, seed=0, progress=False),
           "gan": train(store, "gan-icsd", epochs=1, max_steps=2, max_rows=100, device="cpu", seed=0,
                        progress=False, n_eval_samples=50)}
    return store, mvs


def test_model_cards_are_plain_sql(trained):
    store, mvs = trained
    con = duckdb.connect(store.path, read_only=True)
    try:
        cards = {r["model_id"]: r for r in con.sql("SELECT * FROM model_cards").pl().to_dicts()}
        truth = {r["model_id"]: r for r in con.sql(
            "SELECT model_id, training_rows, metrics::VARCHAR AS metrics FROM model_versions").pl().to_dicts()}
    finally:
        con.close()
    assert set(cards) == {mv.model_id for mv in mvs.values()}
    net, rf, gan = (cards[mvs[k].model_id] for k in ("elemnet", "rf", "gan"))
    assert (net["model"], net["kind"], net["architecture"]) == (f"elemnet-magpie-fe@{mvs['elemnet'].version}",
                                                                "elemnet", "ElemNet")
    f = featurizer("fractions+magpie")
    assert net["input_featurizer"] == "fractions+magpie" and net["input_shape"] == [218] == list(f.shape)
    assert net["input_labels"] == f.labels and net["input_labels"][0] == "H"
    assert net["input_labels"][86].startswith("MagpieData ")
    assert rf["architecture"] == "ForestRegressor" and rf["input_featurizer"] == "magpie"
    assert len(rf["input_labels"]) == 132
    for card, mv in ((net, mvs["elemnet"]), (rf, mvs["rf"])):
        assert (card["target_property"], card["target_unit"]) == ("formation_energy_per_atom", "eV/atom")
        assert (card["target_source"], card["target_source_kind"]) == ("oqmd", "dft")
        assert card["n_train"] + card["n_val"] + card["n_test"] == card["training_rows"]
        assert card["training_rows"] == truth[card["model_id"]]["training_rows"] > 200
        assert card["test_mae"] == pytest.approx(mv.metrics["test"]["mae"])
        assert card["test_r2"] == pytest.approx(mv.metrics["test"]["r2"])
        assert "composition_id" in card["training_selection"]
    assert gan["kind"] == "wgan" and gan["architecture"] == "WGAN" and gan["input_featurizer"] == "latent"
    assert gan["output_featurizer"] == "onehot" and gan["output_shape"] == [8, 85]
    assert gan["input_shape"] == [load_model(store, mvs["gan"].model_id).latent_dim]
    assert gan["target_property"] is None and gan["test_mae"] is None
    assert gan["sample_uniqueness_pct"] == pytest.approx(mvs["gan"].metrics["sample"]["uniqueness_pct"])


def test_torch_weights_say_which_network_and_inputs(trained):
    store, mvs = trained
    con = duckdb.connect(store.path, read_only=True)
    try:
        weights, card = con.execute("SELECT weights, card::VARCHAR FROM model_versions WHERE model_id = ?",
                                    [mvs["elemnet"].model_id]).fetchall()[0]
    finally:
        con.close()
    saved = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    assert saved["format"] == WEIGHTS_FORMAT and saved["card"] == json.loads(card)
    c = saved["card"]
    assert (c["kind"], c["architecture"], c["inputs"]["featurizer"]) == ("elemnet", "ElemNet", "fractions+magpie")
    assert len(c["inputs"]["labels"]) == 218 and c["target"]["unit"] == "eV/atom"
    loaded = load_model(store, mvs["elemnet"].model_id)
    assert sorted(saved["state_dict"]) == sorted(loaded.module.state_dict())
    x = np.random.default_rng(0).normal(size=(5, 218)).astype(np.float32)
    before = loaded.predict_features(x)
    # weights saved before model cards (a plain state_dict) still load, and predict the same
    buf = io.BytesIO()
    torch.save(saved["state_dict"], buf)
    old = buf.getvalue()
    with store.transaction() as wc:
        wc.execute("UPDATE model_versions SET weights = ?, weights_sha256 = ? WHERE model_id = ?",
                   [old, hashlib.sha256(old).hexdigest(), mvs["elemnet"].model_id])
    try:
        again = load_model(store, mvs["elemnet"].model_id)
        assert np.array_equal(again.predict_features(x), before)
    finally:
        with store.transaction() as wc:
            wc.execute("UPDATE model_versions SET weights = ?, weights_sha256 = ? WHERE model_id = ?",
                       [weights, hashlib.sha256(weights).hexdigest(), mvs["elemnet"].model_id])


@pytest.fixture(scope="module")
def generated_template(tmp_path_factory, read_formulas) -> str:
    """300 real MP compositions, a generation run over them, validity checked, some predictions
    (made once; each test gets a copy: generated)."""
    store = new_store(tmp_path_factory.mktemp("generated") / "g.duckdb")
    formulas, values = mp_formulas(read_formulas, 300)
    load_compositions(store, formulas, "mp", values)
    runner.generate(store, ReplayGenerator(formulas), 3000, batch_size=1000, seed=1, device="cpu",
                    progress=False)
    validate_store(store, progress=False)
    ids = store.query("SELECT composition_id FROM candidates ORDER BY composition_id")["composition_id"]
    with store.transaction() as con:
        append(con, "predictions", pl.DataFrame({
            "composition_id": ids[::3], "model_id": 1, "run_id": None,
            "property": "formation_energy_per_atom",
            "value": np.linspace(-2, 1, len(ids[::3]))},
            schema_overrides={"model_id": pl.Int32, "run_id": pl.Int32}))
    return store.path


@pytest.fixture
def generated(generated_template, tmp_path) -> Store:
    return copy_store(generated_template, tmp_path / "test.duckdb")


def _rebuild(out: Path) -> duckdb.DuckDBPyConnection:
    """What a collaborator without matstore does: the manifest's tables as views of their Parquet
    files, then the views' SQL in the manifest's order."""
    manifest = json.loads((out / "manifest.json").read_text())
    con = duckdb.connect()
    for table, t in manifest["tables"].items():
        hive = "true" if t["hive_partitioning"] else "false"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{out / t['files']}', "
                    f"hive_partitioning = {hive}, union_by_name = true)")
    for v in manifest["views"]:
        con.execute(f"CREATE VIEW {v['name']} AS\n" + (out / v["sql"]).read_text())
    return con


def _rows(con, sql: str) -> list[tuple]:
    return [tuple(tuple(x) if isinstance(x, list) else x for x in r) for r in con.execute(sql).fetchall()]


def test_export_manifest_and_view_sql_rebuild_candidates_in_plain_duckdb(generated, tmp_path):
    out = tmp_path / "exp"
    export_parquet(generated, out)
    manifest = json.loads((out / "manifest.json").read_text())
    names = [v["name"] for v in manifest["views"]]
    assert sorted(names) == sorted(view_definitions())      # every view: all tables exported
    assert sorted(p.name for p in (out / "views").iterdir()) == sorted(f"{n}.sql" for n in names)
    for v in manifest["views"]:                              # dependency order
        assert all(r in manifest["tables"] or names.index(r) < names.index(v["name"]) for r in v["reads"])
    cand = next(v for v in manifest["views"] if v["name"] == "candidates")
    assert {"known", "composition_validity", "generated", "predictions"} <= set(cand["reads"])
    assert "eV/atom" in manifest["tables"]["predictions"]["columns"]["value"]
    assert manifest["tables"]["generated"]["comment"]

    sql = "SELECT * FROM candidates ORDER BY composition_id"
    with generated.connect() as con:
        want = _rows(con, sql)
    rebuilt = _rebuild(out)
    try:
        got = _rows(rebuilt, sql)
        assert [d[0] for d in rebuilt.execute(sql).description] == \
            list(generated.query("SELECT * FROM candidates LIMIT 0").columns)
    finally:
        rebuilt.close()
    assert len(want) > 100 and got == want
    assert any(r[-1] is not None for r in want)      # predictions made it into the comparison
    assert sum(1 for r in want if r[5]) > 10          # novel ones too (column `novel`)


def test_export_overwrite_replaces_its_views_and_keeps_a_users_files(generated, tmp_path):
    out = tmp_path / "exp"
    export_parquet(generated, out)
    (out / "views" / "mine.txt").write_text("notes")
    with pytest.raises(ExportError, match="mine.txt was not written by a matstore export"):
        export_parquet(generated, out, overwrite=True)
    (out / "views" / "mine.txt").unlink()
    export_parquet(generated, out, overwrite=True, tables=["compositions", "materials", "sources"])
    manifest = json.loads((out / "manifest.json").read_text())
    # the only views these tables build (anion_families reads compositions alone)
    assert [v["name"] for v in manifest["views"]] == ["anion_families", "known"]
    assert sorted(p.name for p in (out / "views").iterdir()) == ["anion_families.sql", "known.sql"]
    export_parquet(generated, out, overwrite=True, tables=["properties"])
    assert not (out / "views").exists() and json.loads((out / "manifest.json").read_text())["views"] == []
    other = tmp_path / "other"                   # a views/ folder that is not the export's
    export_parquet(generated, other, tables=["properties"])
    (other / "views").mkdir()
    (other / "views" / "x.sql").write_text("SELECT 1")
    with pytest.raises(ExportError, match="not part of its previous export"):
        export_parquet(generated, other, overwrite=True, tables=["compositions", "materials", "sources"])
    assert (other / "views" / "x.sql").read_text() == "SELECT 1"


def test_docs_file_format_is_generated_and_current():
    page = fileformat.generate()
    assert DOC.read_text() == page, "docs/file-format.md is stale: python -m matstore.fileformat > docs/file-format.md"
    assert "### `model_versions`" in page and "| `value` | `DOUBLE` |" in page and "### `candidates`" in page
