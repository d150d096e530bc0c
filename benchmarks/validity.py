"""Validity: our kernel vs smact.screening.smact_validity on the same compositions, per
oxidation-state set (smact's default = icsd24c3, and the named sets), plus the cost of the
oxidation-state assignment. MatGAN-generated formulas (the slow case for smact) and OQMD and MP
formulas. Usage:
    python benchmarks/validity.py [--ref-n 1000] [--sets icsd24,icsd16,...]
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


def _timed(f, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def run(name: str, formulas: list[str], ref_n: int, oxidation_set: str) -> None:
    from smact.screening import smact_validity

    comps = [c for c in map(try_parse, formulas) if isinstance(c, Composition)]
    batch = CompositionBatch.from_compositions(comps)
    validity.kernel.exact_one.cache_clear()
    ours = validity.check(batch, oxidation_set)["smact_valid"]
    ours_rate = len(batch) / _timed(lambda: validity.check(batch, oxidation_set))
    assign_rate = len(batch) / _timed(lambda: validity.check(batch, oxidation_set, assign=True))
    sub = list(range(0, len(comps), max(1, len(comps) // ref_n)))[:ref_n]
    kw = {} if oxidation_set == validity.SMACT_DEFAULT_SET else {"oxidation_states_set": oxidation_set}
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.array([smact_validity(comps[i].formula, **kw) for i in sub])
    ref_rate = len(sub) / (time.perf_counter() - t)
    same = int((ours[sub] == ref).sum())
    print(f"{oxidation_set:11s} {name:9s} ours {ours_rate:9,.0f}/s (+assignment {assign_rate:8,.0f}/s) "
          f"on {len(batch):,} | smact_validity {ref_rate:6,.0f}/s on {len(sub):,} | "
          f"ratio {ours_rate / ref_rate:6,.0f}x | agree {same}/{len(sub)} | valid {ours.mean():.1%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-n", type=int, default=1000, help="compositions for smact_validity")
    ap.add_argument("--sets", default=",".join(validity.OXIDATION_SETS), help="comma-separated sets")
    args = ap.parse_args()
    gen = [l.strip() for l in (DATA / "matgan/gan_icsd_generated_1024.csv").read_text().splitlines() if l.strip()]
    oqmd = pl.read_csv(DATA / "oqmd/formation_enthalpy_train.csv")["formula"].to_list()
    mp = pl.read_csv(DATA / "mp/e_form.csv")["formula"].to_list()
    for s in args.sets.split(","):
        validity.tables(s)  # oxidation-state tables load outside the timing
        run("generated", gen, args.ref_n, s)
        run("oqmd", oqmd, args.ref_n, s)
        run("mp", mp, args.ref_n, s)
    # many repeats, as in generated runs: each distinct composition is computed once
    rng = np.random.default_rng(0)
    rep = [gen[i] for i in rng.integers(0, len(gen), 200_000)]
    comps = [c for c in map(try_parse, rep) if isinstance(c, Composition)]
    batch = CompositionBatch.from_compositions(comps)
    t = _timed(lambda: validity.check(batch, validity.DEFAULT_SET, assign=True))
    print(f"repeats    ours {len(batch) / t:10,.0f}/s (default set, with assignment) on {len(batch):,} "
          f"samples of {len(set(c.composition_id for c in comps)):,} compositions")


if __name__ == "__main__":
    main()
