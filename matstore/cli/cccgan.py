"""`matstore train-cccgan`: train the composition-conditioned crystal GAN on the seed's images."""

from __future__ import annotations

import click

from ..store import Store
from .options import POSITIVE, console, no_progress_option, store_option


@click.command("train-cccgan", epilog="\b\nExample:\n  matstore train-cccgan --db s.duckdb --images "
               "../shared/data/structures/mgmno/mgmno_structures.npy --epochs 10 --holdout benchmark")
@store_option
@click.option("--images", "images", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The seed's (n, 30, 3) image file (.npy).")
@click.option("--name", default="cccgan-mgmno", show_default=True, help="Model name to save under.")
@click.option("--epochs", type=POSITIVE, default=10, show_default=True,
              help="Passes over the augmented images.")
@click.option("--per-composition", type=POSITIVE, default=100, show_default=True,
              help="Augment every cell composition to this many images (the seed: 1,000).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the networks, augmentation and batches (same seed, same model).")
@click.option("--holdout", default="", metavar="F1,F2|benchmark",
              help="Reduced formulas left out of training ('benchmark': the benchmark's 20).")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Resume from / save to this checkpoint after every epoch.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop at the first epoch end after this long.")
@no_progress_option
def train_cccgan(db, images, name, epochs, per_composition, seed, holdout, checkpoint, max_minutes,
                 no_progress, quiet):
    """Train a CCCGAN (Table S1 settings) and save it as a model version."""
    from ..structgen import BENCHMARK_HOLDOUT, train

    held = BENCHMARK_HOLDOUT if holdout == "benchmark" else tuple(f for f in holdout.split(",") if f.strip())
    mv = train(Store(db), name, images, epochs, per_composition, seed, held, checkpoint,
               None if max_minutes is None else 60 * max_minutes, progress=not (no_progress or quiet))
    m = mv.metrics
    console.print(f"{mv.ref}: {len(m['history'])} epochs on {m['data']['training_images']:,} images in "
                  f"{m['train_seconds']:.0f} s ({len(held)} formulas held out)")


COMMANDS = [train_cccgan]
