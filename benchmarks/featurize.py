"""Magpie: our batched kernel vs matminer ElementProperty.from_preset("magpie"), equal work, plus
the 1M-composition store run (compositions -> magpie + validity rows in a DuckDB file).

Equal work: both sides get the same --ref-n compositions (an even spread over real OQMD +
MatGAN-generated formulas) as formula strings and parse them inside the timing (ours
CompositionBatch.from_formulas with its parse cache emptied, matminer pymatgen's Composition);
both after one warm-up call (element tables loaded), each timed once over the whole list; every row of the two answers is
compared (rtol 1e-6, NaN = NaN). Ours on all compositions is printed separately. Usage:
    python benchmarks/featurize.py [--ref-n 2000] [--store-n 1000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from matstore.compositions import Composition, CompositionBatch, parse, try_parse
from matstore.features import get

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def formulas() -> list[str]:
    gen = [l.strip() for l in (DATA / "matgan/gan_icsd_generated_1024.csv").read_text().splitlines() if l.strip()]
    oqmd = pl.read_csv(DATA / "oqmd/formation_enthalpy_train.csv")["formula"].to_list()
    return oqmd + gen


def magpie_vs_matminer(comps: list[Composition], ref_n: int) -> None:
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition as PC

    feat = get("magpie")
    ep = ElementProperty.from_preset("magpie")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feat.transform(CompositionBatch.from_formulas(["NaCl"]))  # tables load outside the timing
        ep.featurize(PC("NaCl"))
        sub = [comps[i].formula for i in np.linspace(0, len(comps) - 1, min(ref_n, len(comps))).astype(int)]
        parse.cache_clear()   # main() parsed every formula once: ours starts cold too
        t = time.perf_counter()
        ours = feat.transform(CompositionBatch.from_formulas(sub))
        ours_time = time.perf_counter() - t
        t = time.perf_counter()
        ref = np.array([ep.featurize(PC(f)) for f in sub])
        ref_time = time.perf_counter() - t
    same = np.isclose(ours, ref, rtol=1e-6, equal_nan=True).all(axis=1)
    batch = CompositionBatch.from_compositions(comps)
    t = time.perf_counter()
    feat.transform(batch)
    all_rate = len(batch) / (time.perf_counter() - t)
    print(f"magpie  same {len(sub):,} formula strings, both parsing, warm tables: ours "
          f"{len(sub) / ours_time:,.0f}/s | matminer {len(sub) / ref_time:,.0f}/s | ratio "
          f"{ref_time / ours_time:,.0f}x | rows equal {int(same.sum()):,}/{len(sub):,}")
    print(f"magpie  ours alone on all {len(batch):,} pre-parsed compositions: {all_rate:,.0f}/s")
    assert same.all(), f"{int((~same).sum())} rows differ from matminer"


def sample_compositions(comps: list[Composition], n: int, seed: int = 0) -> pl.DataFrame:
    """n compositions by recombining real ones: element sets of one, counts of another
    (reduced, keyed), deduplicated; rows in the compositions table's shape."""
    from matstore.compositions import SYMBOLS, keys_from_arrays, reduced_formula

    rng = np.random.default_rng(seed)
    base = CompositionBatch.from_compositions(comps)
    k = base.z.shape[1]
    z = np.zeros((0, k), np.int64)
    c = np.zeros((0, k), np.int64)
    keys = np.zeros(0, np.int64)
    for _ in range(20):  # draw until n distinct compositions
        a = rng.integers(0, len(base), n)
        b = rng.integers(0, len(base), n)
        zn = base.z[a].astype(np.int64)
        # counts of another composition, shuffled, plus a random 0-3 to widen the space
        cn = rng.permuted(np.where(base.z[b] > 0, base.counts[b], 1), axis=1) + rng.integers(0, 4, (n, k))
        cn = np.where(zn > 0, np.maximum(cn, 1), 0)
        g = np.gcd.reduce(cn, axis=1)
        cn = cn // np.maximum(g, 1)[:, None]
        z, c = np.concatenate([z, zn]), np.concatenate([c, cn])
        keys = keys_from_arrays(z, c)
        _, first = np.unique(keys, return_index=True)
        first = np.sort(first)[:n]
        z, c, keys = z[first], c[first], keys[first]
        if len(keys) >= n:
            break
    elements = [[SYMBOLS[v] for v in row if v] for row in z]
    counts = [[int(v) for v, e in zip(cr, zr) if e] for cr, zr in zip(c, z)]
    formula = [reduced_formula(dict(zip(e, ct))) for e, ct in zip(elements, counts)]
    return pl.DataFrame({"composition_id": keys, "formula": formula, "elements": elements,
                         "counts": counts, "n_elements": [len(e) for e in elements],
                         "n_atoms": [sum(ct) for ct in counts]},
                        schema_overrides={"counts": pl.List(pl.Int32)})


def store_run(comps: list[Composition], n: int) -> None:
    from matstore.featurize import featurize_store, validate_store
    from matstore.store import Store, append

    rows = sample_compositions(comps, n)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.init(Path(tmp) / "bench.duckdb")
        with store.transaction() as con:
            append(con, "compositions", rows)
        t = time.perf_counter()
        f = featurize_store(store, "magpie", progress=False)
        t_f = time.perf_counter() - t
        v = validate_store(store, progress=False)
        total = time.perf_counter() - t
        print(f"store   {rows.height:,} compositions: magpie {f.written:,} rows {t_f:.1f} s, "
              f"validity {v.written:,} rows {total - t_f:.1f} s, total {total:.1f} s "
              f"({rows.height / total:,.0f}/s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-n", type=int, default=20_000,
                    help="compositions both sides featurize (matminer ~800/s: 20k is ~25 s)")
    ap.add_argument("--store-n", type=int, default=1_000_000, help="0 skips the store run")
    args = ap.parse_args()
    comps = [c for c in map(try_parse, formulas()) if isinstance(c, Composition)]
    magpie_vs_matminer(comps, args.ref_n)
    if args.store_n:
        store_run(comps, args.store_n)


if __name__ == "__main__":
    main()
