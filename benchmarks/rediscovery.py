"""Does the screen find stable phases nobody showed it? A rediscovery test of the stability screen.

  python benchmarks/rediscovery.py [--hide 0.1] [--samples 200000] [--trees 60] [--seed 0]

1. OQMD formation enthalpies (../shared/data/oqmd/formation_enthalpy_train.csv, ground state per
   composition): whole chemical systems (element sets of >= 2 elements) are hidden at random until
   --hide of the phases are hidden, so the hidden phases' systems are new to everything below.
   Positives: hidden phases on the hull of *all* OQMD phases (e_above_hull <= 1e-9 eV/atom).
2. A store gets the remaining phases (source oqmd_fe) and, as known compositions without a formation
   energy, the OQMD band-gap files' compositions outside the hidden systems (source oqmd_gaps).
3. The FE model: preset rf-fe (random forest on Magpie features, --trees trees) trained on the
   remaining phases; its bias is measured on the remaining phases it did not train on (`bias`).
4. A shipped generator (gan-mp-small, trained on Materials Project compositions) draws --samples;
   each batch is validated, predicted and placed on the DFT hull of the remaining phases; then on
   the mixed and model-only hulls (stability --hull).
5. Every screen variant is read from the view candidate_hull (novel, valid, e_above_hull <= 0.1,
   most stable first), with or without the coverage and ion-share filters, per hull.
   precision@N: share of the top N rows that are hidden on-hull phases; recall: share of all
   hidden on-hull phases among the screen's rows. Matbench-Discovery style (on the candidates that
   are hidden phases, i.e. have a DFT label): F1 of "passes the screen" vs "on the full hull", and
   DAF = that precision / the prevalence of on-hull phases among them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from matstore import compositions

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OQMD_FE = DATA / "oqmd" / "formation_enthalpy_train.csv"
OQMD_GAPS = [DATA / "oqmd" / "bandgap_train.csv", DATA / "oqmd" / "bandgap_val.csv"]
GENERATOR = "gan-mp-small"
REF = "oqmd_fe"             # the remaining phases' source (a csv ingest; "oqmd" names the API source)
TOP_N = (30, 100, 1000)


def _phases() -> pl.DataFrame:
    """Ground state per OQMD composition: composition_id, formula, elements, counts, energy, system."""
    df = pl.read_csv(OQMD_FE)
    rows = {}
    for f, e in zip(df["formula"].to_list(), df["target"].to_list()):
        c = compositions.try_parse(f)
        if isinstance(c, str) or e is None or not np.isfinite(e):
            continue
        if c.composition_id not in rows or e < rows[c.composition_id][4]:
            rows[c.composition_id] = (c.composition_id, c.formula, list(c.elements), list(c.counts), float(e),
                                      "-".join(sorted(c.elements)))
    return pl.DataFrame(list(rows.values()), orient="row",
                        schema=["composition_id", "formula", "elements", "counts", "energy", "system"])


def hide(ph: pl.DataFrame, frac: float, seed: int) -> set[str]:
    """Chemical systems (>= 2 elements) hidden at random until frac of the phases are in them."""
    sizes = ph.filter(pl.col("elements").list.len() >= 2).group_by("system").len().sort("system")
    order = np.random.default_rng(seed).permutation(sizes.height)
    systems, n = sizes["system"].to_numpy()[order], sizes["len"].to_numpy()[order]
    k = int(np.searchsorted(np.cumsum(n), frac * ph.height)) + 1
    return set(systems[:k].tolist())


def positives(ph: pl.DataFrame, hidden: set[str]) -> pl.DataFrame:
    """Hidden phases with their e_above_hull on the hull of all phases, and on_hull."""
    from matstore.compositions import CompositionBatch
    from matstore.stability.hull import Hulls

    b = CompositionBatch.from_lists(ph["elements"].to_list(), ph["counts"].to_list(), ph["composition_id"].to_list())
    hulls = Hulls(b.composition_id, b.z, b.counts, ph["energy"].to_numpy(), ph["formula"].to_list())
    mask = ph["system"].is_in(list(hidden)).to_numpy()
    res = hulls.evaluate(b.z[mask], b.counts[mask], ph["energy"].to_numpy()[mask])
    return ph.filter(pl.Series(mask)).with_columns(
        pl.Series("dft_e_above_hull", res.e_above_hull),
        pl.Series("on_hull", res.e_above_hull <= 1e-9))


def build(store, ph, hidden, tmp: Path, trees: int, samples: int, seed: int, log,
          hulls=("mixed", "model")) -> str:
    from matstore import pretrained, runner, training
    from matstore.ingest import run as ingest
    from matstore.stability import compute
    from matstore.stability.bias import measure

    known = ph.filter(~pl.col("system").is_in(list(hidden)))
    known.select("formula", pl.col("energy").alias("target")).write_csv(tmp / "known.csv")
    ingest(store, "csv", file=str(tmp / "known.csv"), source_name=REF,
           props=["formation_energy_per_atom=target:eV/atom"])
    gaps = pl.concat([pl.read_csv(p) for p in OQMD_GAPS])
    keep = []
    for f in gaps["formula"].to_list():
        c = compositions.try_parse(f)
        keep.append(not isinstance(c, str) and "-".join(sorted(c.elements)) not in hidden)
    gaps.filter(pl.Series(keep)).write_csv(tmp / "gaps.csv")
    ingest(store, "csv", file=str(tmp / "gaps.csv"), source_name="oqmd_gaps", props=["band_gap=target:eV"])
    log(f"store: {known.height:,} known phases, {sum(keep):,} band-gap rows outside the hidden systems")
    fe = training.train(store, "rf-fe", target_source=REF, config={"n_estimators": trees, "n_jobs": 2},
                        seed=seed, progress=False)
    log(f"trained {fe.ref} (rf-fe, {trees} trees): test metrics {fe.metrics.get('test', fe.metrics)}")
    pretrained.import_pretrained(store, GENERATOR)
    run = runner.generate(store, GENERATOR, samples, batch_size=20000, seed=seed, device="cpu", progress=False,
                          stages=runner.Stages(validate=True, predict=(fe.ref,), stability=REF))
    log(f"generated {samples:,} with {GENERATOR}: {run.status}")
    compute(store, reference=REF, progress=False)
    for hull in hulls:
        compute(store, model=fe.ref, reference=REF, hull=hull, progress=False)
        log(f"stability on the {hull} hull")
    bias = measure(store, fe.ref, reference=REF, progress=False)
    log("bias: " + ", ".join(f"{r['group_value']} {r['mean_error']:+.3f}/{r['mae']:.3f} (n={r['n_phases']})"
                             for r in bias.filter(pl.col("grouping") != "anion_family").iter_rows(named=True)))
    return fe.ref



SLOTS = 100          # the goal is read at precision@100
OLD = "old default: DFT hull, no filters"
NEW = "new default: shipped screen_hull_novel"
# name -> (hull reference suffix or None for the shipped default, extra filter, bias-corrected order)
VARIANTS = {
    OLD: ("", None, False),
    "DFT hull + coverage + ions (last session's default)": ("", "both", False),
    "mixed hull, no filters": ("+model", None, False),
    "mixed hull + coverage": ("+model", "coverage", False),
    NEW: (None, None, False),
    "new default, bias-corrected rank": (None, None, True),
}


def _filtered(every: pl.DataFrame, suffix: str, extra: str | None) -> pl.DataFrame:
    d = every.filter(pl.col("reference") == REF + suffix)
    if extra in ("coverage", "both"):
        d = d.filter(pl.col("coverage") >= 1.0)
    if extra == "both":
        d = d.filter(pl.col("rarest_ion_share") >= 0.01)
    return d


def screen_rows(store) -> dict[str, pl.DataFrame]:
    """Each variant's rows (composition_id, on its rank order) from the shipped screen_hull_novel:
    the default (what a user gets) and the view with every default filter relaxed."""
    from matstore.report import run_screen

    cols = ["composition_id", "formula", "reference", "e_above_hull", "coverage", "rarest_ion_share",
            "fe_model_bias_family", "fe_model_bias"]
    every = run_screen(store, "hull_novel", relax=("coverage", "ions", "hulls")).select(cols)
    default = run_screen(store, "hull_novel").select(cols)
    out = {}
    for name, (suffix, extra, by_bias) in VARIANTS.items():
        d = default if suffix is None else _filtered(every, suffix, extra)
        if by_bias:
            d = d.with_columns(k=pl.col("e_above_hull") - pl.coalesce("fe_model_bias_family", "fe_model_bias", 0.0))
            d = d.sort("k", "formula")
        out[name] = d.select("composition_id", "formula", "e_above_hull", "coverage", "rarest_ion_share")
    return out


def evaluate(store, pos: pl.DataFrame, seed: int) -> list[dict]:
    """Per variant: rows, hits in the top N, hits overall, and the labelled candidates (hidden
    phases: DFT truth known) with whether the screen passed them, for F1 / DAF."""
    truth = pos.select("composition_id", "on_hull")
    with store.connect(guarded=True) as con:   # every candidate that is a hidden phase
        cand = pl.from_arrow(con.sql("SELECT DISTINCT composition_id FROM candidates WHERE novel AND valid")
                             .to_arrow_table())
    lab = cand.join(truth, on="composition_id", how="inner")
    out = []
    for name, rows in screen_rows(store).items():
        hit = rows.join(truth, on="composition_id", how="left", maintain_order="left")["on_hull"].fill_null(False)
        hit = hit.to_numpy()
        passed = lab["composition_id"].is_in(rows["composition_id"].implode())
        r = {"seed": seed, "screen": name, "rows": len(hit), "positives": int(pos["on_hull"].sum()),
             "hits_all": int(hit.sum()), "y": lab["on_hull"].to_numpy(), "p": passed.to_numpy()}
        for n in TOP_N:
            r[f"hits@{n}"] = int(hit[:n].sum())
        out.append(r)
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - h), min(1.0, c + h)


def ratio_ci(a: int, b: int, alpha: float = 0.05) -> tuple[float, float, float]:
    """Ratio a / b of two hit counts over the same number of slots, with the exact conditional
    (Clopper-Pearson) 95 % interval: given a + b hits, a ~ Binomial(a + b, r / (1 + r))."""
    from scipy.stats import beta

    n = a + b
    if n == 0:
        return float("nan"), 0.0, float("inf")
    lo = beta.ppf(alpha / 2, a, n - a + 1) if a > 0 else 0.0
    hi = beta.ppf(1 - alpha / 2, a + 1, n - a) if a < n else 1.0
    odds = (lambda q: q / (1 - q) if q < 1 else float("inf"))
    return (a / b if b else float("inf")), odds(lo), odds(hi)


def pooled(results: list[dict]) -> pl.DataFrame:
    """One row per variant over all seeds: P@N (hits / N slots per seed) with its 95 % Wilson
    interval at N = 100, recall, and Matbench-style F1 / DAF on the pooled labelled candidates."""
    rows = []
    for name in VARIANTS:
        rs = [r for r in results if r["screen"] == name]
        k = len(rs)
        y = np.concatenate([r["y"] for r in rs])
        p = np.concatenate([r["p"] for r in rs])
        tp = int((y & p).sum())
        prec, rec = tp / max(int(p.sum()), 1), tp / max(int(y.sum()), 1)
        row = {"screen": name, "seeds": k, "rows/seed": sum(r["rows"] for r in rs) // k}
        for n in TOP_N:
            row[f"hits@{n}"] = sum(r[f"hits@{n}"] for r in rs)
            row[f"P@{n}"] = row[f"hits@{n}"] / (n * k)
        lo, hi = wilson(row[f"hits@{SLOTS}"], SLOTS * k)
        row[f"P@{SLOTS} 95% CI"] = f"{lo:.3f}-{hi:.3f}"
        row["recall"] = sum(r["hits_all"] for r in rs) / max(sum(r["positives"] for r in rs), 1)
        row["labelled"] = len(y)
        row["F1"] = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        row["DAF"] = prec / y.mean() if len(y) and y.mean() else float("nan")
        rows.append(row)
    return pl.DataFrame(rows)


def per_seed(results: list[dict]) -> pl.DataFrame:
    keep = ["seed", "screen", "rows", *(f"hits@{n}" for n in TOP_N), "hits_all", "positives"]
    return pl.DataFrame([{k: r[k] for k in keep} for r in results])


def versions(store) -> str:
    """The model versions behind a store's screen (FE model per split, the shipped generator)."""
    with store.connect(guarded=True) as con:
        got = con.execute("SELECT name || '@' || version, kind, substr(weights_sha256, 1, 12), "
                          "substr(data_hash, 1, 12) FROM model_versions ORDER BY model_id").fetchall()
    return "; ".join(f"{r} ({k}, weights {w}, data {d})" for r, k, w, d in got)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hide", type=float, default=0.1)
    ap.add_argument("--samples", type=int, default=300_000)
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--seeds", default="0,1", help="comma-separated split seeds (held out: the default "
                                                     "screen was chosen on seed 100)")
    ap.add_argument("--store-dir", default=None,
                    help="keep each split's store here (s<seed>.duckdb); a finished one is reused")
    args = ap.parse_args()
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    from matstore.store import Store

    ph = _phases()
    results, tmp = [], tempfile.TemporaryDirectory()
    folder = Path(args.store_dir) if args.store_dir else Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        hidden = hide(ph, args.hide, seed)
        pos = positives(ph, hidden)
        log(f"seed {seed}: {ph.height:,} OQMD phases; hidden {len(hidden):,} systems, {pos.height:,} phases, "
            f"{int(pos['on_hull'].sum()):,} of them on the full hull")
        path, done = folder / f"s{seed}.duckdb", folder / f"s{seed}.duckdb.ok"
        if not done.exists():
            path.unlink(missing_ok=True)
            with tempfile.TemporaryDirectory() as work:
                build(Store.init(path), ph, hidden, Path(work), args.trees, args.samples, seed, log,
                      hulls=("mixed",))
            done.write_text("built\n")
        store = Store(path)
        log(f"seed {seed}: models {versions(store)}")
        results += evaluate(store, pos, seed)
        log(f"seed {seed}: evaluated")
    with pl.Config(tbl_rows=60, tbl_cols=20, tbl_width_chars=220, float_precision=3,
                   tbl_hide_dataframe_shape=True, fmt_str_lengths=60):
        print(f"\nper split ({GENERATOR} x {args.samples:,} samples, rf-fe {args.trees} trees per split):")
        print(per_seed(results))
        table = pooled(results)
        print(f"\npooled over seeds {args.seeds}:")
        print(table.drop([c for c in table.columns if c.startswith("hits@")]))
    old = table.filter(pl.col("screen") == OLD)[f"hits@{SLOTS}"][0]
    new = table.filter(pl.col("screen") == NEW)[f"hits@{SLOTS}"][0]
    r, lo, hi = ratio_ci(new, old)
    k = table["seeds"][0]
    print(f"precision@{SLOTS}: new default {new / (SLOTS * k):.3f} ({new} hits in {SLOTS * k} slots) vs old default "
          f"{old / (SLOTS * k):.3f} ({old}); ratio {r:.1f}x, exact 95 % interval {lo:.1f}-{hi:.1f}x; "
          f"{time.perf_counter() - t0:.0f} s")
    tmp.cleanup()


if __name__ == "__main__":
    main()
