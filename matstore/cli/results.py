"""`matstore screen | report | demo`: look at what the store found."""

from __future__ import annotations

import click

from .. import output
from ..store import Store
from .options import (POSITIVE, console, device_option, example, no_progress_option, output_options,
                      store_option)


@click.command(epilog=example("matstore screen stable_semiconductors --db study.duckdb --partial-coverage"))
@click.argument("name", required=False)
@store_option
@click.option("--max-std", type=float, default=None, metavar="X",
              help="Keep rows whose every predicted spread (*_std: ensembles) is <= X; a single "
                   "model's prediction has no spread and is dropped.")
@click.option("--partial-coverage", is_flag=True,
              help="Keep hull hits whose binary sub-systems lack reference phases (default: dropped, "
                   "the hull there is partly the elements' tie plane).")
@click.option("--rare-ions", is_flag=True,
              help="Keep oxidation-state assignments with an ion the ICSD reports in < 1 %% of the "
                   "element's compounds (default: dropped).")
@click.option("--all-hulls", is_flag=True,
              help="Show the rows of every hull of a source (default: its mixed hull where "
                   "`stability --hull mixed` computed one, else the DFT hull).")
@output_options
def screen(name, db, max_std, partial_coverage, rare_ions, all_hulls, fmt, parquet, limit_rows):
    """Run the screen_NAME view (no NAME: list the screens)."""
    from ..report import run_screen, screen_notes

    relax = tuple(k for k, on in (("coverage", partial_coverage), ("ions", rare_ions), ("hulls", all_hulls))
                  if on)
    df = run_screen(Store(db), name, max_std=max_std, relax=relax)
    for note in screen_notes(name, relax):
        click.echo(note, err=True)
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@click.command(epilog=example("matstore report --db study.duckdb --out report/"))
@store_option
@click.option("--run", "run_id", type=int, default=None, help="Generation run (default: latest).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder to write the report into.")
@no_progress_option
@click.option("--overwrite", is_flag=True, help="Write into OUT even if it is not empty.")
def report(db, run_id, out, no_progress, quiet, overwrite):
    """Write PNG plots and an index.html about a generation run."""
    from ..outpaths import check
    from ..report import write_report

    check(out, overwrite=overwrite, folder=True, option="report --out")
    say = None if (no_progress or quiet) else (lambda line: console.print(line, markup=False, highlight=False))
    path = write_report(Store(db), out, run_id=run_id, notify=say)
    console.print(f"report written to {path}")


@click.command(epilog=example("matstore demo --db demo.duckdb --samples 20000"))
@store_option
@click.option("--samples", type=POSITIVE, default=20000, show_default=True, help="Samples to generate.")
@click.option("--gan-epochs", type=POSITIVE, default=None, help="GAN epochs (default: the demo's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of every step.")
@device_option
@click.option("--top", type=POSITIVE, default=20, show_default=True, help="Candidates shown at the end.")
@click.option("--gan-rows", type=click.IntRange(min=0), default=4000, show_default=True,
              help="MP compositions the demo GAN trains on (0: all).")
def demo(db, samples, gan_epochs, seed, device, top, gan_rows):
    """The whole pipeline on the builtin data: ingest, train, generate, validate, predict, screen."""
    from ..demo import run_demo

    run_demo(Store(db or "demo.duckdb"), samples=samples, gan_epochs=gan_epochs,
             seed=seed, device=device, top=top, console=console, gan_rows=gan_rows or None)


COMMANDS = [screen, report, demo]
