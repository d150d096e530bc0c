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


BOTH = "AND coverage >= 1.0 AND rarest_ion_share >= 0.01"
BY_E = "e_above_hull, formula"
BY_BIAS = "e_above_hull - coalesce(fe_model_bias_family, fe_model_bias, 0), formula"  # bias-corrected
VARIANTS = {  # name -> (reference suffix, SQL filters beyond novel, valid, e_above_hull <= 0.1, order)
    "old default: dft hull, no filters": ("", "", BY_E),
    "dft + coverage": ("", "AND coverage >= 1.0", BY_E),
    "dft + ions": ("", "AND rarest_ion_share >= 0.01", BY_E),
    "new default: dft + coverage + ions": ("", BOTH, BY_E),
    "dft + coverage + ions, bias-corrected rank": ("", BOTH, BY_BIAS),
    "mixed hull": ("+model", "", BY_E),
    "mixed + coverage": ("+model", "AND coverage >= 1.0", BY_E),
    "mixed + ions": ("+model", "AND rarest_ion_share >= 0.01", BY_E),
    "mixed + coverage + ions": ("+model", BOTH, BY_E),
    "model hull": (":model", "", BY_E),
    "model + coverage + ions": (":model", BOTH, BY_E),
}


def evaluate(store, pos: pl.DataFrame) -> pl.DataFrame:
    truth = pos.select("composition_id", "on_hull")
    n_pos = int(pos["on_hull"].sum())
    out = []
    for name, (suffix, extra, order) in VARIANTS.items():
        with store.connect(guarded=True) as con:
            cand = pl.from_arrow(con.sql(
                "SELECT composition_id, e_above_hull, coverage, rarest_ion_share FROM candidate_hull "
                "WHERE reference = ? AND novel AND valid", params=[REF + suffix]).to_arrow_table())
            rows = pl.from_arrow(con.sql(
                f"SELECT composition_id FROM candidate_hull WHERE reference = ? AND novel AND valid "
                f"AND e_above_hull <= 0.1 {extra} ORDER BY {order}",
                params=[REF + suffix]).to_arrow_table())
        hit = rows.join(truth, on="composition_id", how="left")["on_hull"].fill_null(False).to_numpy()
        lab = cand.join(truth, on="composition_id", how="inner")
        passed = set(rows["composition_id"].to_list())
        y = lab["on_hull"].to_numpy()
        p = lab["composition_id"].is_in(list(passed)).to_numpy()
        tp = int((p & y).sum())
        prec = tp / max(int(p.sum()), 1)
        rec = tp / max(int(y.sum()), 1)
        prevalence = y.mean() if len(y) else float("nan")
        r = {"screen": name, "rows": len(hit)}
        for n in TOP_N:
            r[f"P@{n}"] = hit[:n].sum() / n
        r["recall"] = hit.sum() / max(n_pos, 1)
        r["labelled"] = len(y)
        r["F1"] = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        r["DAF"] = prec / prevalence if prevalence else float("nan")
        out.append(r)
    return pl.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hide", type=float, default=0.1)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default=None, help="keep the store here (default: a temporary folder)")
    args = ap.parse_args()
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    from matstore.store import Store

    ph = _phases()
    hidden = hide(ph, args.hide, args.seed)
    pos = positives(ph, hidden)
    log(f"{ph.height:,} OQMD phases; hidden {len(hidden):,} systems, {pos.height:,} phases, "
        f"{int(pos['on_hull'].sum()):,} of them on the full hull")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.store) if args.store else Path(tmp) / "rediscovery.duckdb"
        store = Store.init(path)
        fe = build(store, ph, hidden, Path(tmp), args.trees, args.samples, args.seed, log)
        table = evaluate(store, pos)
    with pl.Config(tbl_rows=50, tbl_cols=20, tbl_width_chars=200, float_precision=3, tbl_hide_dataframe_shape=True,
                   fmt_str_lengths=60):
        print(f"\nrediscovery of hidden on-hull OQMD phases ({fe}, {GENERATOR} x {args.samples:,}, "
              f"seed {args.seed}):")
        print(table)
    old = table.filter(pl.col("screen").str.starts_with("old default"))["P@100"][0]
    new = table.filter(pl.col("screen").str.starts_with("new default"))["P@100"][0]
    print(f"precision@100: new default {new:.3f} vs old default {old:.3f} "
          f"({'inf' if old == 0 and new > 0 else f'{new / old:.1f}' if old else 'n/a'} x); "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
