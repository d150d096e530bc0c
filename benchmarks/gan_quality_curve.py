"""GAN-MP at the thesis' widths (Table 3.2): generation quality after every epoch (issue 14, 3).

    nohup nice -n 5 python benchmarks/gan_quality_curve.py --minutes 30 > out/gan_curve.log 2>&1 &

Trains preset gan-mp's network (Table 3.2 widths, batch 32, WGAN-GP, Adam 1e-4) with the
generator's output bias started at -4 (from 0 it decodes nothing for many epochs on a CPU,
presets.py) on the training split of scripts/pretrain_generators.py's store (the MatGAN-curated
MP compositions, 90%), and after each epoch draws 5,000 samples (fixed seed) and records:
decodable %, CN+EB validity, uniqueness, novelty, leave-out recovery (generation_metrics) and
the element-count TV distance to the training set. Stops after --epochs or --minutes; writes
out/gan_quality_curve.json and docs/gan_quality_curve.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class Budget(Exception):
    pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=ROOT / "out" / "pretrain" / "generators.duckdb")
    ap.add_argument("--split-of", default="transformer-mp@1", help="whose train/leave-out split")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "gan_quality_curve.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "gan_quality_curve.png")
    ap.add_argument("--max-rows", type=int, default=None, help="a smoke test on the first rows")
    a = ap.parse_args(argv)
    import torch

    from matstore import models
    from matstore.compositions import CompositionBatch
    from matstore.features import onehot
    from matstore.quality import tv_distance
    from matstore.store import Store
    from matstore.models.gan import fit_wgan, init_output_bias
    from matstore.training import presets
    from matstore.training.sample_metrics import generation_metrics

    torch.set_num_threads(1)
    store = Store(a.store)
    rows = store.query("SELECT s.role, c.composition_id, c.elements, c.counts FROM composition_sets s "
                       "JOIN compositions c USING (composition_id) WHERE s.set_name LIKE ? "
                       "ORDER BY c.composition_id", [f"{a.split_of}/%"])
    train = rows.filter(rows["role"] == "train")
    leave = rows.filter(rows["role"] != "train")["composition_id"].to_numpy()
    batch = CompositionBatch.from_lists(train["elements"].to_list(), train["counts"].to_list(),
                                        train["composition_id"].to_numpy())
    x, ok = onehot.encode(batch)
    x = np.asarray(x, np.float32)[ok][:a.max_rows]
    lrows = rows.filter(rows["role"] != "train")
    xv, okv = onehot.encode(CompositionBatch.from_lists(lrows["elements"].to_list(),
                                                        lrows["counts"].to_list()))
    xv = np.asarray(xv, np.float32)[okv]
    ref_counts = dict(zip(*np.unique((batch.z > 0).sum(1), return_counts=True)))
    p = presets.get("gan-mp")
    hp = dict(p.hyper)
    torch.manual_seed(0)
    gan = models.build("wgan", p.config())
    init_output_bias(gan, -4.0)
    curve: list[dict] = []
    t0 = time.perf_counter()

    def on_epoch(epoch, hist):
        s = gan.sample(a.samples, torch.Generator().manual_seed(0), "cpu").numpy()
        m = generation_metrics(s, batch.composition_id, leave_out_ids=leave)
        z, _, dec = onehot.decode(s)
        n_el = (np.asarray(z)[np.asarray(dec, bool)] > 0).sum(1)
        m["tv_element_count"] = tv_distance(dict(zip(*np.unique(n_el, return_counts=True))), ref_counts)
        m.update(epoch=epoch, minutes=round((time.perf_counter() - t0) / 60, 2),
                 val_w=hist.val_loss[-1], steps=hist.steps)
        curve.append(m)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(curve, indent=1))
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()}),
              flush=True)
        if time.perf_counter() - t0 > a.minutes * 60:
            raise Budget

    try:
        fit_wgan(gan, x, xv, epochs=a.epochs, batch_size=hp["batch_size"], lr_g=hp["lr_g"],
                 lr_d=hp["lr_d"], n_critic=hp["n_critic"], gp_lambda=hp["gp_lambda"], clip=hp["clip"],
                 threads=1, progress=False, on_epoch=on_epoch)
    except Budget:
        pass
    plot(curve, a.plot)
    return 0


def plot(curve: list[dict], path: Path) -> None:
    if not curve:
        return
    from matstore.report.plots import pyplot

    plt = pyplot()
    ep = [c["epoch"] for c in curve]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("decodable_pct", "decodable"), ("validity_pct", "CN+EB valid"),
                       ("uniqueness_pct", "unique"), ("novelty_pct", "novel"),
                       ("recovery_pct", "leave-out recovered")):
        ax.plot(ep, [c[key] for c in curve], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"% of {curve[0]['n_samples']:,} samples")
    ax.legend(fontsize=8)
    ax.set_title("GAN-MP (Table 3.2 widths): quality per epoch")
    bx.plot(ep, [c["tv_element_count"] for c in curve], marker="o", color="C3")
    bx.set_xlabel("epoch")
    bx.set_ylabel("TV distance, elements per composition")
    bx.set_title("vs the training set")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())
