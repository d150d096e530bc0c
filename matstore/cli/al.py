"""`matstore al ...`: active-learning campaigns (matstore.al). Thin: parse, call, print."""

from __future__ import annotations

import click

from .. import output
from ..store import Store
from .options import (POSITIVE, RegistryChoice, console, example, no_progress_option, output_options,
                      store_option)


def _acquisitions():
    from ..al.acquisition import ACQUISITIONS  # noqa: PLC0415

    return ACQUISITIONS


@click.group(epilog=example(
    "matstore al start --autoencoder ae --oracle model:rf-bg@1 --base-source oqmd --base-rows 1000",
    "matstore al step 1 --rounds 5"))
def al():
    """Active learning: GP on autoencoder latents proposes compositions, an oracle labels them."""


@al.command("start", epilog=example(
    "matstore al start --autoencoder ae --oracle model:rf-bg@1 --base-source oqmd --target max "
    "--base-rows 1000 --batch-size 100"))
@store_option
@click.option("--autoencoder", required=True, metavar="NAME[@N]",
              help="Autoencoder model version whose latent space the campaign searches.")
@click.option("--oracle", required=True, metavar="model:NAME@N|external",
              help="Who labels proposals: a registered predictor, or external (al export / al label).")
@click.option("--property", "prop", default="band_gap", show_default=True, help="Property to learn.")
@click.option("--target", default="max", show_default=True,
              help="Objective: max, or range:A:B (value in [A, B]).")
@click.option("--acquisition", type=RegistryChoice(_acquisitions), default="ucb", show_default=True,
              help="Acquisition function: ucb, ei, thompson (find the best), straddle (learn where "
                   "the property crosses --threshold or the range's edges), random (the baseline).")
@click.option("--kappa", type=float, default=10.0, show_default=True,
              help="UCB: mean + kappa * std (botorch's beta = kappa^2).")
@click.option("--threshold", type=float, default=None, metavar="T",
              help="straddle with target max: the screen's level (property >= T); also the "
                   "default --threshold of `al finish`.")
@click.option("--near-levels", type=float, default=None, metavar="FRACTION",
              help="straddle: the local candidates start only from this fraction of the labelled "
                   "points, those nearest the threshold (or the range's edges).")
@click.option("--candidates-from", default=None, metavar="SQL",
              help="Pool-based: SQL returning composition_id (e.g. a generated set); the candidates "
                   "are those compositions' latents, and a pick proposes the composition itself.")
@click.option("--batch-size", type=POSITIVE, default=100, show_default=True, help="Proposals per round.")
@click.option("--base", "base_selection", default="SELECT composition_id FROM known", show_default=True,
              help="SQL returning composition_id: the labelled compositions to start from.")
@click.option("--base-source", default=None, help="Source of the base labels (default: the one DFT source).")
@click.option("--base-rows", type=POSITIVE, default=None, help="A seeded random subset of the base.")
@click.option("--candidates", "n_candidates", type=POSITIVE, default=3000, show_default=True,
              help="Latent points the acquisition is evaluated on per round.")
@click.option("--name", default=None, help="A name for the campaign.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
def al_start(db, autoencoder, oracle, prop, target, acquisition, kappa, threshold, near_levels,
             candidates_from, batch_size,
             base_selection, base_source, base_rows, n_candidates, name, seed):
    """Record a new campaign (nothing is proposed until `al step`)."""
    from ..al import start

    cid = start(Store(db), autoencoder, oracle, property=prop, target=target, acquisition=acquisition,
                kappa=kappa, batch_size=batch_size, base_selection=base_selection,
                base_source=base_source, base_rows=base_rows, seed=seed, name=name,
                n_candidates=n_candidates, threshold=threshold, near_levels=near_levels,
                candidates_from=candidates_from)
    console.print(f"campaign {cid} started")


@al.command("step", epilog=example("matstore al step 1 --db study.duckdb --rounds 3"))
@click.argument("campaign_id", type=int)
@store_option
@click.option("--rounds", type=POSITIVE, default=1, show_default=True, help="Rounds to run.")
@click.option("--allow-missing", is_flag=True,
              help="External oracle: close the open round even where labels are missing.")
@no_progress_option
def al_step(campaign_id, db, rounds, allow_missing, no_progress, quiet):
    """Finish the open round or propose (and, with a model oracle, label) the next one."""
    from ..al import step

    def notify(line: str) -> None:
        console.print(f"campaign {campaign_id} {line}", markup=False, highlight=False)

    for _ in range(rounds):
        r = step(Store(db), campaign_id, allow_missing=allow_missing,
                 notify=None if (no_progress or quiet) else notify)
        what = "finished" if r.resumed else f"proposed {r.proposed} ({r.decodable} decodable) from {r.n_train} labelled,"
        console.print(f"campaign {campaign_id} round {r.round_no}: {what} {r.labelled} labelled "
                      f"in {r.seconds:.1f} s")


@al.command("status", epilog=example("matstore al status 1 --proposals --csv"))
@click.argument("campaign_id", type=int, required=False)
@store_option
@click.option("--proposals", "show_proposals", is_flag=True, help="List the campaign's proposals instead.")
@output_options
def al_status(campaign_id, db, show_proposals, fmt, parquet, limit_rows):
    """One row per campaign (or CAMPAIGN_ID's row, or its proposals with their labels)."""
    from ..al import proposals, status

    if show_proposals:
        if campaign_id is None:
            raise click.UsageError("--proposals needs a CAMPAIGN_ID")
        df = proposals(Store(db), campaign_id)
    else:
        df = status(Store(db), campaign_id)
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@al.command("export", epilog=example("matstore al export 1 round1.csv"))
@click.argument("campaign_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False))
@store_option
@click.option("--round", "round_no", type=POSITIVE, default=None, help="Round (default: the open one).")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists (never the store).")
def al_export(campaign_id, file, db, round_no, overwrite):
    """Write the round's unlabelled decodable proposals to FILE (.csv or .parquet) to label."""
    from ..al import export, get

    store = Store(db)
    n = export(store, get(store, campaign_id), file, round_no, overwrite=overwrite)
    console.print(f"wrote {n} proposal(s) to {file}: fill in `value`, then `matstore al label`")


@al.command("label", epilog=example(
    "matstore al label 1 round1.csv --source vasp_hse --kind dft --method HSE06"))
@click.argument("campaign_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False))
@store_option
@click.option("--source", "source", required=True, help="Name of the labels' source (e.g. vasp_pbe).")
@click.option("--kind", type=click.Choice(["dft", "experiment"]), default=None,
              help="What the values are (default: unknown).")
@click.option("--method", default=None, help="Level of theory of DFT labels (e.g. PBE).")
def al_label(campaign_id, file, db, source, kind, method):
    """Store the labels in FILE (proposal_id, value) under SOURCE; all checked before any write."""
    from ..al import get, ingest_file

    store = Store(db)
    n = ingest_file(store, get(store, campaign_id), file, source, kind, method)
    console.print(f"stored {n} new label(s) from {file} under source {source}")


@al.command("finish", epilog=example(
    'matstore al finish 1 --model rf-bg --pool "SELECT composition_id FROM candidates" --threshold 4'))
@click.argument("campaign_id", type=int)
@store_option
@click.option("--model", "preset", default="rf-bg", show_default=True,
              help="Training preset of the screening predictor (base + campaign labels).")
@click.option("--name", default=None, help="Registry name (default: PRESET-alID).")
@click.option("--pool", default=None, help="SQL returning composition_id: the compositions to screen.")
@click.option("--threshold", type=float, default=None,
              help="Target max: candidates are predicted >= THRESHOLD (default: the campaign's --threshold).")
@no_progress_option
@output_options
def al_finish(campaign_id, db, preset, name, pool, threshold, no_progress, quiet, fmt, parquet, limit_rows):
    """Train the screening predictor on base + labels and screen the pool with it; a pool
    composition the campaign labelled is decided by its label (column screened_by)."""
    from ..al import finish

    r = finish(Store(db), campaign_id, preset=preset, name=name, pool=pool, threshold=threshold,
               progress=not (no_progress or quiet))
    console.print(f"saved {r.model} ({r.training_rows} rows)"
                  + (f"; {r.n_candidates} candidate(s) of {r.n_pool} screened" if pool else ""))
    if r.candidates is not None:
        output.emit(r.candidates, fmt, parquet, max_rows=limit_rows)


COMMANDS = [al]
