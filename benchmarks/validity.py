"""Validity: our kernel vs smact.screening.smact_validity (defaults) on the same compositions.
MatGAN-generated formulas (the slow case for smact) and OQMD formulas. Usage:
    python benchmarks/validity.py [--ref-n 1000]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from matstore import validity
from matstore.compositions import Composition, CompositionBatch, try_parse

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def run(name: str, formulas: list[str], ref_n: int) -> None:
    from smact.screening import smact_validity

    comps = [c for c in map(try_parse, formulas) if isinstance(c, Composition)]
    batch = CompositionBatch.from_compositions(comps)
    validity._exact_one.cache_clear()
    t = time.perf_counter()
    ours = validity.check(batch)["smact_valid"]
    ours_rate = len(batch) / (time.perf_counter() - t)
    sub = list(range(0, len(comps), max(1, len(comps) // ref_n)))[:ref_n]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([smact_validity(comps[i].formula) for i in sub])
    ref_rate = len(sub) / (time.perf_counter() - t)
    same = int((ours[sub] == ref).sum())
    print(f"{name:10s} ours {ours_rate:10,.0f}/s on {len(batch):,} | smact_validity "
          f"{ref_rate:7,.0f}/s on {len(sub):,} | ratio {ours_rate / ref_rate:,.0f}x | "
          f"agree {same}/{len(sub)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-n", type=int, default=1000, help="compositions for smact_validity")
    args = ap.parse_args()
    validity.tables()  # oxidation-state tables load outside the timing
    gen = [l.strip() for l in (DATA / "matgan/gan_icsd_generated_1024.csv").read_text().splitlines() if l.strip()]
    run("generated", gen, args.ref_n)
    oqmd = pl.read_csv(DATA / "oqmd/formation_enthalpy_train.csv")["formula"].to_list()
    run("oqmd", oqmd, args.ref_n)
    # many repeats, as in generated runs: each distinct composition is computed once
    rng = np.random.default_rng(0)
    rep = [gen[i] for i in rng.integers(0, len(gen), 200_000)]
    comps = [c for c in map(try_parse, rep) if isinstance(c, Composition)]
    batch = CompositionBatch.from_compositions(comps)
    t = time.perf_counter()
    validity.check(batch)
    print(f"repeats    ours {len(batch) / (time.perf_counter() - t):10,.0f}/s on {len(batch):,} "
          f"samples of {len(set(c.composition_id for c in comps)):,} compositions")


if __name__ == "__main__":
    main()
