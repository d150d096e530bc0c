"""MatGAN Table 3.3 protocol on Materials Project compositions, at a size that fits the machine.

  python benchmarks/matgan_novelty.py [--rows 8000] [--epochs 10] [--samples 50000] [--full-size]

Take the compositions of ../shared/data/mp/e_form.csv (a seeded subset of --rows), train the
GAN-MP WGAN on 90% of them (the split is recorded in composition_sets as gan-mp@1/train, the
leave-out as gan-mp@1/val + gan-mp@1/test), generate --samples, and report the recovery % of the
training and leave-out compositions as samples are drawn (from the `generated` rows), then the
`novelty_recovery` view, beside MatGAN's GAN-MP column of Table 3.3 (57,530 train / 6,392 leave-out
/ 2M samples). By default the GAN is a narrowed Table 3.2 network (--full-size: the thesis widths).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import polars as pl

from matstore import compositions, runner
from matstore.store import Store, append

DATA = Path(os.environ.get("MATSTORE_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
MATGAN_MP = {"training": 57530, "leave_out": 6392, "generated": 2_000_000, "recovery_train_pct": 47.36,
             "recovery_leave_out_pct": 48.82, "new_samples": 1_969_633}
NARROW = {"generator": {"latent_dim": 32, "fc_channels": 32,
                        "deconvs": [[16, 5, 5, 2, 2], [16, 3, 3, 2, 1], [8, 3, 3, 2, 1], [1, 3, 3, 2, 1]]},
          "critic": {"convs": [[8, 3, 3, 2, 1], [16, 3, 3, 2, 1], [16, 3, 3, 2, 1], [32, 5, 5, 2, 2]]}}


def build_store(rows: int, seed: int) -> Store:
    df = pl.read_csv(DATA / "mp" / "e_form.csv").sample(fraction=1.0, shuffle=True, seed=seed)
    comps = {}
    for f in df["formula"].to_list():
        c = compositions.try_parse(f)
        if not isinstance(c, str):
            comps.setdefault(c.composition_id, c)
        if len(comps) >= rows:
            break
    store = Store.init(Path(tempfile.mkdtemp()) / "novelty.duckdb")
    vals = list(comps.values())
    with store.transaction() as con:
        append(con, "compositions", pl.DataFrame({
            "composition_id": list(comps), "formula": [c.formula for c in vals],
            "elements": [list(c.elements) for c in vals],
            "counts": pl.Series([list(c.counts) for c in vals], dtype=pl.List(pl.Int32)),
            "n_elements": [c.n_elements for c in vals], "n_atoms": [c.n_atoms for c in vals]}))
        append(con, "materials", pl.DataFrame({
            "material_id": list(range(len(vals))), "ingest_id": 1, "source": "mp",
            "external_id": [f"e_form#{i}" for i in range(len(vals))], "composition_id": list(comps),
            "raw_formula": [c.formula for c in vals]}))
    return store


RECOVERY_CURVE = """
WITH first AS (SELECT composition_id, min(batch_no) AS b FROM generated WHERE run_id = $run GROUP BY 1),
sets AS (SELECT DISTINCT CASE WHEN role = 'train' THEN 'train' ELSE 'leave_out' END AS s, composition_id
         FROM composition_sets WHERE model_id = $model),
sizes AS (SELECT s, count(*) AS n FROM sets GROUP BY s),
hits AS (SELECT f.b, sets.s, count(*) AS k FROM first f JOIN sets USING (composition_id) GROUP BY 1, 2),
grid AS (SELECT rb.batch_no, sizes.s, sizes.n FROM run_batches rb, sizes WHERE rb.run_id = $run)
SELECT g.batch_no, g.s,
       (SELECT sum(n_samples) FROM run_batches WHERE run_id = $run AND batch_no <= g.batch_no) AS drawn,
       100.0 * coalesce((SELECT sum(k) FROM hits h WHERE h.s = g.s AND h.b <= g.batch_no), 0) / g.n AS pct
FROM grid g ORDER BY g.batch_no, g.s
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=8000, help="distinct MP compositions used")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--samples", type=int, default=50000)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-critic", type=int, default=3)
    ap.add_argument("--full-size", action="store_true", help="thesis Table 3.2 widths")
    ap.add_argument("--device", default=runner.default_device())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from matstore.training import train

    store = build_store(args.rows, args.seed)
    t = time.perf_counter()
    mv = train(store, "gan-mp", epochs=args.epochs, batch_size=64, device=args.device, seed=args.seed,
               fractions=(0.9, 0.05, 0.05), config=None if args.full_size else NARROW,
               lr_g=args.lr, lr_d=args.lr, n_critic=args.n_critic, progress=False)
    t_train = time.perf_counter() - t
    res = runner.generate(store, mv.ref, args.samples, batch_size=args.batch_size, seed=args.seed,
                          device=args.device, progress=False)
    print(f"GAN {mv.ref} ({'Table 3.2' if args.full_size else 'narrowed Table 3.2'}) trained "
          f"{args.epochs} epochs in {t_train:.0f} s on {args.device}; generated {res.n_samples:,} "
          f"samples at {res.samples_per_s:,.0f}/s, {res.n_decodable:,} decodable")
    curve = store.query(RECOVERY_CURVE.replace("$run", str(res.run_id)).replace("$model", str(mv.model_id)))
    wide = curve.pivot(on="s", index=["batch_no", "drawn"], values="pct").sort("batch_no")
    print("recovery % vs samples drawn:")
    for r in wide.iter_rows(named=True):
        print(f"  {int(r['drawn']):>10,}  train {r['train']:6.2f}%  leave-out {r['leave_out']:6.2f}%")
    nr = store.query("SELECT * FROM novelty_recovery WHERE run_id = ?", [res.run_id])
    by = {r["role"]: r for r in nr.iter_rows(named=True)}
    lo_size = sum(by[r]["set_size"] for r in ("val", "test") if r in by)
    lo_rec = sum(by[r]["n_recovered"] for r in ("val", "test") if r in by)
    ours = {"training": by["train"]["set_size"], "leave_out": lo_size, "generated": res.n_samples,
            "recovery_train_pct": by["train"]["recovery_pct"],
            "recovery_leave_out_pct": round(100 * lo_rec / max(lo_size, 1), 2),
            "new_samples": by["train"]["new_samples"]}
    print(f"{'Table 3.3 (GAN-MP)':28s} {'MatGAN':>12s} {'ours':>12s}")
    for k, v in MATGAN_MP.items():
        print(f"{k:28s} {v:>12,} {ours[k]:>12,}" if isinstance(v, int) else
              f"{k:28s} {v:>11.2f}% {ours[k]:>11.2f}%")
    stats = store.query("SELECT decodable_pct, unique_pct, novel_pct FROM generation_stats WHERE run_id = ?",
                        [res.run_id]).row(0, named=True)
    print(f"generation_stats: {stats}  (MatGAN GAN-MP uniqueness 85.9% at 340k samples)")


if __name__ == "__main__":
    main()
