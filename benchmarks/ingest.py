"""Ingest speed: matstore vs a plain pymatgen loop, on all of oqmd/bandgap_train.csv.

    python benchmarks/ingest.py [--data ../shared/data] [--baseline-rows N]

ours:     `matstore ingest oqmd --file bandgap_train.csv --prop band_gap=target:eV --matgan-curation`
          into a fresh store (parse each distinct formula once, curate, write through Arrow).
baseline: what a script does without matstore: for each row pymatgen Composition(formula),
          its reduced_formula, the same row curation rules (85 elements, counts <= 8 in the
          reduced formula, more than one element), a list of tuples, then ONE bulk insert into
          DuckDB (a row-by-row INSERT would be far slower still; the loop is the baseline).
Goal: the whole 239k-row file ingested and curated in under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ours(path: Path, db: Path) -> tuple[float, object]:
    from matstore.curation import Curation
    from matstore.ingest import ingest
    from matstore.sources import open_source
    from matstore.store import Store

    store = Store.init(db)
    t0 = time.perf_counter()
    res = ingest(store, open_source("oqmd", file=str(path), props=["band_gap=target:eV"]),
                 Curation.matgan())
    return time.perf_counter() - t0, res


def baseline(path: Path, db: Path, n: int | None) -> tuple[float, int, int]:
    import csv
    import warnings

    import duckdb
    import pandas as pd
    from pymatgen.core import Composition

    from matstore.elements85 import ELEMENTS_85

    allowed = set(ELEMENTS_85)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    t0 = time.perf_counter()
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, r in enumerate(rows):
            c = Composition(r["formula"])
            reduced, _ = c.get_reduced_composition_and_factor()
            amounts = reduced.get_el_amt_dict()
            if (len(amounts) < 2 or any(el not in allowed for el in amounts)
                    or any(v > 8 for v in amounts.values())):
                continue
            out.append((f"bandgap_train.csv#{i + 1}", r["formula"], c.reduced_formula,
                        float(r["target"])))
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE materials (external_id VARCHAR, raw_formula VARCHAR, formula VARCHAR, "
                "band_gap DOUBLE)")
    df = pd.DataFrame(out, columns=["external_id", "raw_formula", "formula", "band_gap"])
    con.execute("INSERT INTO materials SELECT * FROM df")
    con.close()
    return time.perf_counter() - t0, len(rows), len(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("MATSTORE_TEST_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--baseline-rows", type=int, default=None,
                    help="run the pymatgen loop on the first N rows only (default: all)")
    args = ap.parse_args()
    path = Path(args.data) / "oqmd" / "bandgap_train.csv"
    if not path.is_file():
        print(f"no {path}; pass --data", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t_ours, res = ours(path, db)
        size = db.stat().st_size
        t_base, n_base, kept_base = baseline(path, Path(tmp) / "baseline.duckdb", args.baseline_rows)
    rate_ours = res.rows_seen / t_ours
    rate_base = n_base / t_base
    print(f"rows in file                  {res.rows_seen:>10,}")
    print(f"matstore ingest + curation    {t_ours:>10.2f} s  {rate_ours:>10,.0f} rows/s  "
          f"kept {res.rows_kept:,}, curated {res.rows_curated:,} {res.curation}")
    print(f"pymatgen loop + bulk insert   {t_base:>10.2f} s  {rate_base:>10,.0f} rows/s  "
          f"({n_base:,} rows, kept {kept_base:,})")
    print(f"speed-up                      {rate_ours / rate_base:>10.1f} x")
    print(f"store size on disk            {size / 2**20:>10.1f} MiB")
    print(f"goal < 30 s for the whole file: {'met' if t_ours < 30 else 'MISSED'} ({t_ours:.1f} s)")
    if args.baseline_rows is None:
        assert kept_base == res.rows_kept, "baseline and matstore disagree on the curated row count"
    return 0


if __name__ == "__main__":
    sys.exit(main())
