"""Write a small real store with this release of matstore, for tests/test_old_store.py: a later
matstore (more migrations) and the locked DuckDB must open it and bring it forward.

    python scripts/make_old_store.py            # data from ../shared/data (or MATSTORE_TEST_DATA)

Writes tests/data/store_schemaN.duckdb.gz (N: this release's schema version; gzip because a
DuckDB file is mostly empty 256 KiB blocks, and *.duckdb is git-ignored) and a manifest beside it
(store_schemaN.json: matstore commit, DuckDB version and storage format, migrations, rows per
table). Run it once per release whose schema changed, and commit both files; never rewrite an
old one. Contents, all real: 300 MP formation energies and 100 experimental band gaps from
../shared/data, Magpie features, validity, a tiny random forest (5 trees), the shipped pretrained
gan-mp-small (no training) with a 1,000-sample generation run, its quality row, predictions
and hull energies.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's matstore, whatever is installed

from matstore import migrations, pretrained, quality, runner, stability, training  # noqa: E402
from matstore.featurize import featurize_store, validate_store  # noqa: E402
from matstore.ingest import run as ingest_run  # noqa: E402
from matstore.predict import predict  # noqa: E402
from matstore.store import Store  # noqa: E402

MAX_BYTES = 1 << 20   # tracked test data stays under 1 MiB
GAN = "gan-mp-small"


def build(store: Store, data: Path, work: Path) -> None:
    # a seeded sample (the file is sorted by energy): a spread of energies and chemistries
    mp = pl.read_csv(data / "mp" / "e_form.csv").sample(300, seed=0, shuffle=True)
    mp.write_csv(work / "e_form_300.csv")
    ingest_run(store, "mp", file=str(work / "e_form_300.csv"),
               props=["formation_energy_per_atom=target:eV/atom"])
    ingest_run(store, "csv", file=str(data / "expt" / "expt_gap.csv"), limit=100,
               props=["band_gap=target:eV"], source_name="expt", kind="experiment")
    featurize_store(store, "magpie", progress=False)
    validate_store(store, progress=False)
    fe = training.train(store, "rf-fe", max_rows=250, target_source="mp", seed=0,
                        config={"n_estimators": 5, "n_jobs": 1}, progress=False)
    pretrained.ensure(store, GAN)
    run = runner.generate(store, GAN, 1000, batch_size=500, seed=0, device="cpu", progress=False)
    where = f"composition_id IN (SELECT composition_id FROM generated WHERE run_id = {run.run_id})"
    validate_store(store, where=where, progress=False)
    predict(store, fe.ref, where=where, device="cpu", progress=False)
    stability.compute(store, model=fe.ref, reference="mp", progress=False)
    quality.refresh(store, run.run_id)


def describe(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name").fetchall()]
        rows = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in tables}
        storage = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                              "WHERE database_name = current_database()").fetchall()[0][0]
        return {"schema_version": migrations.current_version(con),
                "migrations": [f"{v:04d}_{n}" for v, n in migrations.applied(con)],
                "storage_version": storage, "tables": rows}
    finally:
        con.close()


def commit() -> str:
    """The checkout's commit, '-modified' where the code that writes a store differs from it."""
    def git(*a):
        return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "matstore", "migrations", "sql")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-modified" if changed else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("MATSTORE_TEST_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--out-dir", type=Path, default=REPO / "tests" / "data")
    ap.add_argument("--force", action="store_true", help="Replace this schema version's files.")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"error: data folder {args.data} not found (--data or MATSTORE_TEST_DATA)", file=sys.stderr)
        return 1
    version = migrations.latest_version()
    out = args.out_dir / f"store_schema{version}.duckdb.gz"
    if out.exists() and not args.force:
        print(f"error: {out} exists (a released fixture is never rewritten; --force to replace)",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / f"store_schema{version}.duckdb"
        store = Store.init(db)
        build(store, args.data, work)
        assert not Path(str(db) + ".wal").exists(), "the store was not checkpointed on close"
        info = {"matstore_commit": commit(), "duckdb": duckdb.__version__, **describe(db),
                "script": "scripts/make_old_store.py"}
        args.out_dir.mkdir(parents=True, exist_ok=True)
        with open(db, "rb") as src, open(out, "wb") as raw:
            # mtime 0 and no file name: the same store gives the same bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                shutil.copyfileobj(src, gz)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        print(f"error: {out.name} would be {size:,} bytes, over {MAX_BYTES:,}; make the store smaller",
              file=sys.stderr)
        return 1
    info["gz_bytes"] = size
    out.with_suffix("").with_suffix(".json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({size:,} bytes, schema {version}, DuckDB {duckdb.__version__} "
          f"storage {info['storage_version']}); {sum(info['tables'].values()):,} rows in "
          f"{sum(1 for n in info['tables'].values() if n)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
