"""Energy above the convex hull: speed against pymatgen, and a discovery benchmark. Usage:
    python benchmarks/stability.py [--candidates 100000] [--ref-systems 0]        # (a) speed
    python benchmarks/stability.py --discovery [--epochs 150] [--max-rows N]       # (a) + (b)

(a) Speed. Reference: the OQMD formation energies (../shared/data/oqmd/formation_enthalpy_train.csv,
ground state per composition, elements at 0 eV/atom). Candidates: Materials Project compositions
with their DFT formation energies (mp/e_form.csv, a seeded sample), i.e. real compositions in real
chemical systems. Ours: `Hulls` built from the arrays (hulls per system built as needed) and
evaluated for all candidates, timed end to end. pymatgen: one `PhaseDiagram` per chemical system
(built from the system's entries only, PDEntry objects made outside the timing) and
`get_decomp_and_e_above_hull(allow_negative=True)` for each of its candidates. Equal work: both
sides start from parsed compositions (ours arrays, pymatgen PDEntry objects made outside the
timing), both cold (no hull built before), and by default pymatgen is measured in FULL (every
system, ~1-2 minutes); --ref-systems N times a random sample of N systems instead and the ratio
is then printed as EXTRAPOLATED (mean seconds per system x number of systems). Every answer
pymatgen computed is compared with ours.

(b) Discovery, in the style of Matbench Discovery, on OQMD: 10% of the compositions held out
(seeded), the FE predictors trained on the other 90% through the store (`training.train` with the
registry's presets elemnet-magpie-fe and rf-fe, `predict`), energy above the hull of the TRAINING
phases from the predicted energy (`matstore.stability.compute`) and from the held-out DFT energy
(the truth); "stable" = on or below the hull (e_above_hull <= 0). Printed: precision, recall, F1,
DAF (precision / prevalence), MAE of e_above_hull, beside a dummy (the training mean as every
prediction).

Measured (2-core box shared with other jobs, load 4-11, 2026-11-22):
(a) 100,000 MP compositions in 38,817 chemical systems vs 51,255 OQMD phases:
    matstore 0.99 s wall / 0.49 s CPU (101,185 candidates/s wall); pymatgen on 400 sampled systems
    (1,109 candidates) 1.3 ms CPU per system, extrapolated 100 s wall / 50 s CPU (996/s):
    102x faster per candidate (wall and CPU); largest difference 4.9e-15 eV/atom. Earlier runs
    under heavier load: 89x-101x (wall), 101x (CPU).
    Measured in FULL (all 38,817 systems, 2026-12-07, load 11-17): matstore 1.12 s wall / 0.47 s
    CPU; pymatgen 140.5 s wall / 52.3 s CPU: 126x (wall), 112x (CPU); all 100,000 answers
    compared, largest difference 4.9e-14 eV/atom.
(b) `--discovery --epochs 100` (all 46,035 training rows; 5,220 held out, 26.1% on or below the
    training hull by DFT, so the best possible DAF is 3.83):
    dummy (training mean 0.004)  no composition predicted stable      MAE(e_above_hull) 0.615
    rf-fe (100 trees)            P 0.913  R 0.737  F1 0.815  DAF 3.50  MAE 0.147 eV/atom
                                 (trained 216 s; own test MAE 0.135 eV/atom)
    elemnet-magpie-fe (100 ep.)  P 0.911  R 0.864  F1 0.887  DAF 3.50  MAE 0.099 eV/atom
                                 (trained 1,403 s under load; own test MAE 0.090 eV/atom)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from matstore import compositions
from matstore.compositions import CompositionBatch
from matstore.stability.hull import Hulls

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FE = "oqmd/formation_enthalpy_train.csv"


def _parsed(path: Path) -> tuple[list, np.ndarray]:
    df = pl.read_csv(path)
    comps = [compositions.try_parse(f) for f in df["formula"].to_list()]
    keep = [i for i, c in enumerate(comps) if not isinstance(c, str)]
    return [comps[i] for i in keep], df[df.columns[1]].to_numpy()[keep]


def speed(n_candidates: int, ref_systems: int, seed: int = 0) -> None:
    from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
    from pymatgen.core import Composition

    ref, ref_e = _parsed(DATA / FE)
    cand, cand_e = _parsed(DATA / "mp/e_form.csv")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(cand), size=min(n_candidates, len(cand)), replace=False)
    cand, cand_e = [cand[i] for i in pick], cand_e[pick]
    rb = CompositionBatch.from_compositions(ref)
    cb = CompositionBatch.from_compositions(cand)
    t, c = time.perf_counter(), time.process_time()
    hulls = Hulls(rb.composition_id, rb.z, rb.counts, ref_e, [c.formula for c in ref])
    res = hulls.evaluate(cb.z, cb.counts, cand_e)
    ours_s, ours_cpu = time.perf_counter() - t, time.process_time() - c
    systems: dict[frozenset, list[int]] = {}
    for i, c in enumerate(cand):
        systems.setdefault(frozenset(c.elements), []).append(i)
    print(f"(a) speed: {len(cand):,} Materials Project compositions (mp/e_form.csv) in "
          f"{len(systems):,} chemical systems against the hulls of {hulls.n_phases:,} OQMD phases")
    print(f"    matstore: {ours_s:.2f} s wall, {ours_cpu:.2f} s CPU for all of them (Hulls built from the "
          f"arrays + evaluate) = {len(cand) / ours_s:,.0f} candidates/s wall, "
          f"{len(cand) / ours_cpu:,.0f}/s CPU")

    # pymatgen: per system, entries of the subsets made outside the timing
    by_set: dict[frozenset, list[int]] = {}
    for i, c in enumerate(ref):
        by_set.setdefault(frozenset(c.elements), []).append(i)
    keys = list(systems)
    full = not ref_systems or ref_systems >= len(keys)
    sample = keys if full else [keys[i] for i in rng.choice(len(keys), size=ref_systems, replace=False)]
    pm_s, pm_cpu, n_pm, worst, n_off = 0.0, 0.0, 0, 0.0, 0
    for key in sample:
        els = sorted(key)
        idx = [i for n in range(1, len(els) + 1) for s in _combos(els, n) for i in by_set.get(s, ())]
        entries = [PDEntry(Composition(ref[i].formula), ref_e[i] * Composition(ref[i].formula).num_atoms)
                   for i in idx] + [PDEntry(Composition(s), 0.0) for s in els]
        cands = [(j, PDEntry(Composition(cand[j].formula), cand_e[j] * Composition(cand[j].formula).num_atoms))
                 for j in systems[key]]
        t, c = time.perf_counter(), time.process_time()
        pd = PhaseDiagram(entries)
        got = [(j, pd.get_decomp_and_e_above_hull(e, allow_negative=True)[1]) for j, e in cands]
        pm_s, pm_cpu = pm_s + time.perf_counter() - t, pm_cpu + time.process_time() - c
        n_pm += len(cands)
        diffs = [abs(res.e_above_hull[j] - e) for j, e in got]
        worst = max([worst] + diffs)
        n_off += sum(d > 1e-9 for d in diffs)
    pm_total, pm_total_cpu = (v / len(sample) * len(systems) for v in (pm_s, pm_cpu))
    how = "measured in FULL" if full else f"EXTRAPOLATED from {len(sample):,} sampled systems"
    print(f"    pymatgen: {pm_s:.2f} s wall, {pm_cpu:.2f} s CPU for {n_pm:,} candidates in {len(sample):,} "
          f"systems = {pm_cpu / len(sample) * 1e3:.1f} ms CPU per system; all {len(systems):,} systems "
          f"({how}): {pm_total:,.0f} s wall, {pm_total_cpu:,.0f} s CPU = "
          f"{len(cand) / pm_total:,.0f} candidates/s wall, {len(cand) / pm_total_cpu:,.0f}/s CPU")
    print(f"    ratio ({how}; both from parsed compositions, both cold): {pm_total / ours_s:,.0f}x "
          f"faster (wall), {pm_total_cpu / ours_cpu:,.0f}x (CPU time, steadier on a shared machine); "
          f"answers compared: all {n_pm:,} pymatgen computed, largest |difference| in e_above_hull "
          f"{worst:.1e} eV/atom, {n_off} above 1e-9")


def _combos(els, n):
    import itertools

    return (frozenset(s) for s in itertools.combinations(els, n))


def _metrics(name: str, pred: np.ndarray, true: np.ndarray) -> None:
    ok = np.isfinite(pred) & np.isfinite(true)
    p, t = pred[ok] <= 0, true[ok] <= 0
    tp = int((p & t).sum())
    prec = tp / p.sum() if p.sum() else float("nan")
    rec = tp / t.sum() if t.sum() else float("nan")
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else float("nan")
    prevalence = t.mean()
    mae = np.abs(pred[ok] - true[ok]).mean()
    fmt = lambda v, w=6, d=3: f"{v:{w}.{d}f}" if np.isfinite(v) else "-".rjust(w)  # noqa: E731
    print(f"    {name:24s} precision {fmt(prec)}  recall {fmt(rec)}  F1 {fmt(f1)}  "
          f"DAF {fmt(prec / prevalence, 5, 2)}  MAE(e_above_hull) {mae:.3f} eV/atom  "
          f"({int(p.sum()):,} predicted stable of {ok.sum():,})")


def discovery(epochs: int | None, max_rows: int | None, rf_trees: int, seed: int = 0) -> None:
    from matstore import training
    from matstore.ingest import run as ingest_run
    from matstore.predict import predict
    from matstore.stability import compute, load_reference
    from matstore.store import Store

    df = pl.read_csv(DATA / FE)
    rng = np.random.default_rng(seed)
    held = rng.random(df.height) < 0.1
    with tempfile.TemporaryDirectory(prefix="matstore-stab-bench-") as tmp:
        tmp = Path(tmp)
        df.filter(~pl.Series(held)).write_csv(tmp / "train.csv")
        df.filter(pl.Series(held)).select("formula").write_csv(tmp / "held.csv")
        store = Store.init(tmp / "b.duckdb")
        ingest_run(store, "csv", file=str(tmp / "train.csv"), props=["formation_energy_per_atom=target:eV/atom"])
        ingest_run(store, "csv", file=str(tmp / "held.csv"))        # compositions only: no energy
        train_sel = "SELECT composition_id FROM properties WHERE name = 'formation_energy_per_atom'"
        held_sel = ("composition_id IN (SELECT composition_id FROM materials WHERE ingest_id = 2) "
                    "AND composition_id NOT IN (" + train_sel + ")")
        truth = df.filter(pl.Series(held)).with_columns(
            pl.col("formula").map_elements(lambda f: compositions.try_parse(f).composition_id
                                           if not isinstance(compositions.try_parse(f), str) else None,
                                           return_dtype=pl.Int64).alias("composition_id"))
        truth = truth.drop_nulls("composition_id").group_by("composition_id").agg(pl.col("target").min())
        comps = store.query(f"SELECT composition_id, elements, counts FROM compositions c WHERE {held_sel}")
        truth = comps.join(truth, on="composition_id").sort("composition_id")
        ref = load_reference(store, "csv")
        b = CompositionBatch.from_lists(truth["elements"].to_list(), truth["counts"].to_list(),
                                        truth["composition_id"].to_list())
        true_e = ref.hulls.evaluate(b.z, b.counts, truth["target"].to_numpy()).e_above_hull
        mean = store.query("SELECT avg(value) AS m FROM properties WHERE name = 'formation_energy_per_atom'")["m"][0]
        dummy = ref.hulls.evaluate(b.z, b.counts, np.full(len(b), mean)).e_above_hull
        print(f"(b) discovery on OQMD: {ref.hulls.n_phases:,} training phases (the hull), "
              f"{truth.height:,} held-out compositions, {(true_e <= 0).mean():.1%} of them on or "
              f"below the training hull (DFT)")
        _metrics(f"dummy (mean {mean:.3f})", dummy, true_e)
        for preset, kw in (("rf-fe", {"config": {"n_estimators": rf_trees, "n_jobs": 2}}),
                           ("elemnet-magpie-fe", {"epochs": epochs})):
            t = time.perf_counter()
            mv = training.train(store, preset, on=train_sel, max_rows=max_rows, seed=seed,
                                progress=False, **kw)
            tt = time.perf_counter() - t
            predict(store, mv.ref, where=held_sel, progress=False)
            t = time.perf_counter()
            res = compute(store, model=mv.ref, reference="csv", ref=ref, progress=False)
            st = time.perf_counter() - t
            got = store.query("SELECT composition_id, e_above_hull FROM stability WHERE model_id = ? "
                              "ORDER BY composition_id", [mv.model_id])
            pred = truth.select("composition_id").join(got, on="composition_id", how="left")["e_above_hull"]
            test_mae = (mv.metrics.get("test") or {}).get("mae", float("nan"))
            _metrics(f"{mv.ref}", pred.to_numpy().astype(float), true_e)
            rows = store.query("SELECT training_rows FROM model_versions WHERE model_id = ?",
                               [mv.model_id])["training_rows"][0]
            print(f"      ({preset}: trained in {tt:.0f} s on {rows:,} rows, own test MAE "
                  f"{test_mae:.3f} eV/atom; stability job {res.n_computed:,} rows in {st:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--ref-systems", type=int, default=0,
                    help="systems timed with pymatgen (default 0: all of them, measured in full)")
    ap.add_argument("--discovery", action="store_true", help="also run (b), which trains models")
    ap.add_argument("--epochs", type=int, default=None, help="elemnet epochs (default: the preset's 150)")
    ap.add_argument("--max-rows", type=int, default=None, help="train on at most this many rows")
    ap.add_argument("--rf-trees", type=int, default=100)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    if not args.skip_speed:
        speed(args.candidates, args.ref_systems)
    if args.discovery:
        discovery(args.epochs, args.max_rows, args.rf_trees)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
