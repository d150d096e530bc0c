"""`matstore relax | relax-stability | potentials`: ML-potential relaxation of stored structures
and structure-based stability (matstore.relax, matstore.models.potential)."""

from __future__ import annotations

import click

from ..store import Store
from .options import POSITIVE, console, executor_options, no_progress_option, store_option

FMAX = click.FloatRange(0, 10, min_open=True)


def settings_options(f):
    f = click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
                     help="Seconds of compute per structure before it stops with status time_limit.")(f)
    f = click.option("--max-steps", type=click.IntRange(0, 100_000), default=500, show_default=True,
                     help="FIRE steps per structure before it stops with status step_cap.")(f)
    f = click.option("--fmax", type=FMAX, default=0.05, show_default=True,
                     help="Converged when the max force (atoms and cell) is at most this (eV/Å).")(f)
    f = click.option("--batch", type=click.IntRange(1, 1024), default=16, show_default=True,
                     help="Structures that advance together (one potential call per step) and commit together.")(f)
    f = click.option("--potential", default=None,
                     help="chgnet (default, CHGNet 0.3.0), sevennet-0 or sevennet-l3i5.")(f)
    return f


def _settings(fmax, max_steps, time_limit):
    from ..relax import RelaxSettings  # noqa: PLC0415

    return RelaxSettings(fmax=fmax, max_steps=max_steps, time_limit=time_limit)


@click.command(epilog="""\b
Example:
  matstore relax --where "s.origin = 'template'" --potential chgnet --max-steps 300 --time-limit 120
  matstore relax --resume 7
  matstore relax --potential chgnet --batch 8 --executor processes:2""")
@store_option
@click.option("--where", default=None,
              help="SQL condition on structures (alias s); default: every structure that is not a relaxation.")
@settings_options
@click.option("--resume", "resume_id", type=int, default=None,
              help="Continue a killed relax run with its own settings and selection.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@no_progress_option
@executor_options
def relax(db, where, potential, batch, fmax, max_steps, time_limit, resume_id, device, no_progress, quiet,
          executor, executor_insecure):
    """Relax stored structures with an ML potential (FIRE + ASE FrechetCellFilter, batched):
    relaxed structures become new rows (origin relaxed, linked to their input), energies and
    status per structure go to the relaxations table. Running it again relaxes only what is new."""
    from ..relax.run import relax_structures  # noqa: PLC0415

    res = relax_structures(Store(db), where, potential, _settings(fmax, max_steps, time_limit), batch,
                           resume_id, device, show_progress=not (no_progress or quiet), executor=executor,
                           insecure=executor_insecure)
    console.print(f"run {res.run_id}: {res.n_relaxed:,} of {res.n_selected:,} selected structures relaxed "
                  f"with {res.potential} in {res.seconds:,.1f} s ("
                  + (", ".join(f"{k} {v:,}" for k, v in sorted(res.counts.items())) or "nothing new") + ")")


@click.command("relax-stability", epilog="""\b
Example:
  matstore relax --potential chgnet && matstore relax-stability --potential chgnet
  matstore query "SELECT * FROM stability WHERE reference = 'relaxed-known'"
""")
@store_option
@settings_options
@no_progress_option
def relax_stability(db, potential, batch, fmax, max_steps, time_limit, no_progress, quiet):
    """Formation energy and energy above the hull of every composition's lowest relaxed polymorph,
    against elemental references and known structures relaxed with the SAME potential (one energy
    convention); rows go to the stability table (reference relaxed-known). Elements without a
    reference get ASE reference states relaxed first (settings below)."""
    from ..relax.stability import structure_stability  # noqa: PLC0415

    res = structure_stability(Store(db), potential, _settings(fmax, max_steps, time_limit), batch,
                              show_progress=not (no_progress or quiet))
    console.print(f"run {res.run_id}: {res.n_compositions:,} compositions placed, "
                  f"{res.n_on_or_below_hull:,} on or below the hull"
                  + (f"; not placed (no elemental reference): {', '.join(res.missing[:5])}" if res.missing else ""))


@click.command(epilog="""\b
Example:
  matstore potentials""")
def potentials():
    """List the ML potentials, whether their package is installed, and what their energies are."""
    from ..models import potential as pot  # noqa: PLC0415

    for spec in pot.SPECS.values():
        try:
            ident = spec.identity()
            state = f"{spec.package} {ident['package_version']}, weights sha256 {ident['weights_sha256'][:12]}"
        except pot.PotentialError as e:
            state = f"not available: {e}"
        click.echo(f"{spec.name:15s} {state}\n{'':15s} {spec.description}\n{'':15s} energies: {spec.convention}")


COMMANDS = [relax, relax_stability, potentials]
