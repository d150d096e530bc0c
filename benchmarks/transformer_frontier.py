"""How a composition transformer trades uniqueness for validity (issue 14): one generate run per
(sampling setting, sample count), measured by matstore.quality like benchmarks/generators.py,
then plotted: uniqueness at N against both-valid % of samples, one line per N, each point a
(temperature, top-p); the issue's goal region (>= 90% unique, >= 88% both valid) shaded.

    nohup nice -n 5 python benchmarks/transformer_frontier.py --store out/pretrain/generators.duckdb \
        --model transformer-mp > out/transformer_frontier.log 2>&1 &

Results are cached by (model, N, temperature, top-p) in --cache (a rerun measures only what is
missing); the plot goes to docs/transformer_frontier.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SETTINGS = [(1.0, 1.0), (1.25, 0.95), (1.25, 1.0), (1.5, 0.9), (1.5, 1.0), (2.0, 0.8), (2.0, 0.9)]
GOAL = {"unique_pct": 90.0, "both_valid_samples_pct": 88.0}


def key(model: str, n: int, t: float, p: float) -> str:
    return f"{model}|{n}|{t:g}|{p:g}"


def plot(rows: list[dict], out: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    ax.fill_between([GOAL["unique_pct"], 100], GOAL["both_valid_samples_pct"], 100, color="tab:green",
                    alpha=0.12, label="goal (>= 90% unique, >= 88% both valid)")
    for n in sorted({r["n_samples"] for r in rows}):
        pts = sorted((r for r in rows if r["n_samples"] == n), key=lambda r: r["unique_pct"])
        ax.plot([r["unique_pct"] for r in pts], [r["both_valid_samples_pct"] for r in pts], "o",
                label=f"{n:,} samples")
        for r in pts:
            ax.annotate(f"T{r['temperature']:g} p{r['top_p']:g}", (r["unique_pct"], r["both_valid_samples_pct"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("uniqueness at N (% of decodable samples)")
    ax.set_ylabel("charge-neutral and EN-balanced (% of samples)")
    ax.set_title(f"{model}: sampling temperature / top-p trade validity for uniqueness")
    ax.set_xlim(right=100)
    ax.set_ylim(top=100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=ROOT / "out" / "pretrain" / "generators.duckdb")
    ap.add_argument("--model", default="transformer-mp")
    ap.add_argument("-n", nargs="+", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--settings", nargs="+", default=[f"{t:g},{p:g}" for t, p in SETTINGS],
                    help="TEMPERATURE,TOP_P pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "transformer_frontier.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "transformer_frontier.png")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from generators import measure

    from matstore.store import Store

    cache = json.loads(a.cache.read_text()) if a.cache.is_file() else {}
    store = Store(a.store)
    settings = [tuple(float(x) for x in s.split(",")) for s in a.settings]
    for n in a.n:
        for t, p in settings:
            k = key(a.model, n, t, p)
            if k not in cache:
                cache[k] = measure(store, a.model, n, a.seed, 8192, t, p)
                a.cache.parent.mkdir(parents=True, exist_ok=True)
                a.cache.write_text(json.dumps(cache, indent=1, default=str))
    # every cached setting of this model (earlier invocations' too), by N then temperature
    rows = sorted((r for k, r in cache.items() if k.split("|")[0] == a.model),
                  key=lambda r: (r["n_samples"], r["temperature"], r["top_p"]))
    print(f"{'N':>10} {'T':>5} {'top-p':>5} {'both % samples':>14} {'unique %':>9} {'novel %':>8} "
          f"{'leave-out rec. %':>16} {'TV count (samples)':>18}")
    for r in rows:
        print(f"{r['n_samples']:>10,} {r['temperature']:>5g} {r['top_p']:>5g} {r['both_valid_samples_pct']:>14.1f} "
              f"{r['unique_pct']:>9.1f} {r['novel_pct']:>8.1f} {r['leave_out_recovery_pct']:>16.2f} "
              f"{r['tv_element_count_samples']:>18.4f}")
    plot(rows, a.plot, a.model)
    print(f"plot: {a.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
