"""Validity: our kernel vs smact.screening.smact_validity, equal work, per oxidation-state set
(smact's default = icsd24c3, and the named sets), plus the cost of the oxidation-state assignment.

Equal work: both sides get the same compositions (all MatGAN-generated formulas - the slow case
for smact - and --ref-n spread over OQMD and MP), both cold (our per-composition cache emptied,
each side's element tables loaded first), each timed once over the whole list; two ratios:
  from strings  both parse the formula strings (ours: CompositionBatch.from_formulas; smact
                parses inside smact_validity);
  pre-parsed    ours a CompositionBatch, smact pymatgen Compositions made outside the timing.
Every answer is compared (all rows, not a sample); warm repeats of ours are printed separately.
Usage:
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
    from pymatgen.core import Composition as PmgComposition
    from smact.screening import smact_validity

    parsed = [(f, c) for f, c in zip(formulas, map(try_parse, formulas)) if isinstance(c, Composition)]
    if ref_n and len(parsed) > ref_n:   # an even spread, the same rows for both sides
        parsed = [parsed[i] for i in np.linspace(0, len(parsed) - 1, ref_n).astype(int)]
    strings = [f for f, _ in parsed]
    kw = {} if oxidation_set == validity.SMACT_DEFAULT_SET else {"oxidation_states_set": oxidation_set}

    def ours_from_strings():
        validity.kernel.exact_one.cache_clear()
        t = time.perf_counter()
        v = validity.check(CompositionBatch.from_formulas(strings), oxidation_set)["smact_valid"]
        return v, time.perf_counter() - t

    batch = CompositionBatch.from_compositions([c for _, c in parsed])
    validity.kernel.exact_one.cache_clear()
    t = time.perf_counter()
    ours = validity.check(batch, oxidation_set)["smact_valid"]
    ours_cold = time.perf_counter() - t
    ours_s, ours_s_cold = ours_from_strings()
    warm = _timed(lambda: validity.check(batch, oxidation_set))
    assign = _timed(lambda: validity.check(batch, oxidation_set, assign=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smact_validity("NaCl", **kw)   # smact's element data loaded outside the timing
        t = time.perf_counter()
        ref_s = np.array([smact_validity(f, **kw) for f in strings])
        ref_s_time = time.perf_counter() - t
        pmg = [PmgComposition(c.formula) for _, c in parsed]
        t = time.perf_counter()
        ref = np.array([smact_validity(c, **kw) for c in pmg])
        ref_time = time.perf_counter() - t
    n = len(strings)
    bad = int((ours != ref).sum() + (ours_s != ref_s).sum() + (ref != ref_s).sum())
    print(f"{oxidation_set:11s} {name:9s} n={n:5,} | cold, from strings: ours {n / ours_s_cold:9,.0f}/s "
          f"smact {n / ref_s_time:5,.0f}/s ratio {ref_s_time / ours_s_cold:6,.0f}x | cold, pre-parsed: "
          f"ours {n / ours_cold:9,.0f}/s smact {n / ref_time:5,.0f}/s ratio {ref_time / ours_cold:6,.0f}x | "
          f"all {n:,} answers equal: {'yes' if bad == 0 else f'NO ({bad} differ)'} | valid {ours.mean():.1%} "
          f"| ours warm {n / warm:9,.0f}/s, +assignment {n / assign:8,.0f}/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-n", type=int, default=1000,
                    help="compositions compared on OQMD and MP (the generated set: all of them)")
    ap.add_argument("--sets", default=",".join(validity.OXIDATION_SETS), help="comma-separated sets")
    args = ap.parse_args()
    gen = [l.strip() for l in (DATA / "matgan/gan_icsd_generated_1024.csv").read_text().splitlines() if l.strip()]
    oqmd = pl.read_csv(DATA / "oqmd/formation_enthalpy_train.csv")["formula"].to_list()
    mp = pl.read_csv(DATA / "mp/e_form.csv")["formula"].to_list()
    for s in args.sets.split(","):
        validity.tables(s)  # oxidation-state tables load outside the timing
        run("generated", gen, 0, s)
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
