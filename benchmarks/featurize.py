"""Magpie: our batched kernel vs matminer ElementProperty.from_preset("magpie") on the same
compositions (real OQMD + MatGAN-generated), plus the 1M-composition store run
(compositions -> magpie + validity rows in a DuckDB file). Usage:
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

from matstore.compositions import Composition, CompositionBatch, try_parse
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
    feat.transform(CompositionBatch.from_formulas(["NaCl"]))  # table load outside the timing
    batch = CompositionBatch.from_compositions(comps)
    t = time.perf_counter()
    ours = feat.transform(batch)
    ours_rate = len(batch) / (time.perf_counter() - t)
    ep = ElementProperty.from_preset("magpie")
    sub = comps[:: max(1, len(comps) // ref_n)][:ref_n]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([ep.featurize(PC(c.formula)) for c in sub])
    ref_rate = len(sub) / (time.perf_counter() - t)
    idx = np.searchsorted(np.arange(len(comps)), [comps.index(c) for c in sub[:200]])
    assert np.allclose(ours[idx], ref[:200], rtol=1e-6, equal_nan=True)
    print(f"magpie  ours {ours_rate:12,.0f}/s on {len(batch):,} | matminer {ref_rate:8,.0f}/s on "
          f"{len(sub):,} | ratio {ours_rate / ref_rate:,.0f}x")


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
    ap.add_argument("--ref-n", type=int, default=2000, help="compositions for matminer")
    ap.add_argument("--store-n", type=int, default=1_000_000, help="0 skips the store run")
    args = ap.parse_args()
    comps = [c for c in map(try_parse, formulas()) if isinstance(c, Composition)]
    magpie_vs_matminer(comps, args.ref_n)
    if args.store_n:
        store_run(comps, args.store_n)


if __name__ == "__main__":
    main()
