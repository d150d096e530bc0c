"""export parquet -> read back with plain DuckDB / polars: same rows, same checksums."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import numpy as np
import polars as pl
import pytest

from matstore.export import ExportError, checksum, export_parquet, parquet_relation
from matstore.store import Store, append
from _store_data import new_store


def _ingest_csv(store: Store, df: pl.DataFrame, path, prop: str, unit: str) -> None:
    from matstore.ingest import run

    df.write_csv(path)
    run(store, "csv", file=str(path), props=[f"{prop}=target:{unit}"])


@pytest.fixture(scope="module")
def study(tmp_path_factory, read_formulas) -> Store:
    """A store built from real data: two ingests, features, validity, a model, two runs."""
    d = tmp_path_factory.mktemp("export")
    store = new_store(d / "study.duckdb")
    _ingest_csv(store, read_formulas("oqmd/bandgap_val.csv").head(1500), d / "oqmd_gap.csv", "band_gap", "eV")
    _ingest_csv(store, read_formulas("mp/e_form.csv").head(1000), d / "mp_ef.csv",
                "formation_energy_per_atom", "eV/atom")
    with store.transaction() as con:
        ids = np.array([r[0] for r in con.execute(
            "SELECT composition_id FROM compositions ORDER BY composition_id").fetchall()])
        rng = np.random.default_rng(0)
        append(con, "features", pl.DataFrame({
            "composition_id": ids, "featurizer": "fractions", "version": "1",
            "vector": [rng.random(4).astype(np.float32).tolist() for _ in ids]}))
        append(con, "validity", pl.DataFrame({
            "composition_id": ids, "checker_version": "t1", "charge_neutral": rng.random(len(ids)) < .5,
            "electronegativity_balanced": rng.random(len(ids)) < .5, "smact_valid": None}))
        con.execute("INSERT INTO model_versions (name, version, kind, config, weights, weights_sha256, "
                    "seed, created_at) VALUES ('gan', 1, 'wgan', '{\"latent\": 128}', "
                    "'\\x00\\x01\\xff'::BLOB, 'abc', 7, now())")
        for run_id in (1, 2):
            con.execute("INSERT INTO runs (run_id, kind, model_id, seed, device, status, started_at) "
                        "VALUES (?, 'generate', 1, ?, 'cpu', 'done', now())", [run_id, run_id])
            n = 3000
            append(con, "generated", pl.DataFrame({
                "run_id": np.full(n, run_id, np.int32), "batch_no": (np.arange(n) // 1000).astype(np.int32),
                "sample_no": np.arange(n), "composition_id": rng.choice(ids, n)}))
            append(con, "predictions", pl.DataFrame({
                "composition_id": ids[:200], "model_id": np.full(200, 1, np.int32),
                "run_id": np.full(200, run_id, np.int32), "property": "band_gap", "value": rng.random(200)}))
    return store


def test_export_reads_back_identically_with_plain_duckdb_and_polars(study, tmp_path):
    out = tmp_path / "exp"
    summary = export_parquet(study, out)
    with study.connect() as con:
        tables = {t: checksum(con, f'"{t}"') for t in summary["table"]}
    assert {"compositions", "materials", "properties", "generated", "model_versions", "ingests",
            "schema_migrations"} <= set(tables)
    assert tables["generated"][0] == 6000 and tables["materials"][0] > 2000
    manifest = json.loads((out / "manifest.json").read_text())
    plain = duckdb.connect()  # no matstore involved in reading back
    for t, (rows, total) in tables.items():
        assert checksum(plain, parquet_relation(out, t), table=t) == (rows, total), t
        assert manifest["tables"][t]["rows"] == rows and manifest["tables"][t]["checksum"] == str(total)
    # generated is partitioned by run: one run can be read alone
    assert sorted(p.name for p in (out / "generated").iterdir()) == ["run_id=1", "run_id=2"]
    one = pl.read_parquet(out / "generated" / "run_id=2" / "*.parquet")
    assert one.height == 3000
    comps = pl.read_parquet(out / "compositions" / "data.parquet")
    assert comps.height == tables["compositions"][0]
    assert comps.schema["elements"] == pl.List(pl.String)
    # blobs and float arrays survive
    w = plain.sql(f"SELECT weights FROM {parquet_relation(out, 'model_versions')}").fetchall()[0][0]
    assert bytes(w) == b"\x00\x01\xff"
    store_vec = study.query("SELECT vector FROM features ORDER BY composition_id LIMIT 5")["vector"].to_list()
    back = plain.sql(f"SELECT vector FROM {parquet_relation(out, 'features')} "
                     "ORDER BY composition_id LIMIT 5").fetchall()
    assert [list(r[0]) for r in back] == store_vec


def test_export_refuses_a_non_empty_folder_and_leaves_no_partial_export(study, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_parquet(study, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="no table"):
        export_parquet(study, tmp_path / "other", tables=["compositions", "nope"])
    assert not (tmp_path / "other").exists() and not (tmp_path / ".other.partial").exists()
    with pytest.raises(ExportError, match="not a matstore export"):   # --overwrite: exports only
        export_parquet(study, out, overwrite=True, tables=["compositions"])
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    prev = tmp_path / "prev"
    export_parquet(study, prev, tables=["compositions", "runs"])
    export_parquet(study, prev, overwrite=True, tables=["compositions"])
    assert sorted(p.name for p in prev.iterdir()) == ["compositions", "manifest.json", "views"]  # anion_families


def test_empty_store_exports_empty_tables_that_read_back(tmp_path):
    store = new_store(tmp_path / "empty.duckdb")
    export_parquet(store, tmp_path / "e")
    plain = duckdb.connect()
    for t in ("generated", "compositions", "runs"):
        assert checksum(plain, parquet_relation(tmp_path / "e", t), table=t)[0] == 0


@pytest.mark.slow
def test_cli_export_parquet(study, tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "matstore.cli", "export", "parquet", str(out), "--db", study.path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "generated" / "run_id=1").is_dir() and "generated" in r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "matstore.cli", "export", "parquet", str(out), "--db", study.path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "--overwrite" in r.stderr
