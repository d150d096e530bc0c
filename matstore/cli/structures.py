"""`matstore structures predict | show | parity`: crystal structures of compositions (matstore.structures)."""

from __future__ import annotations

import re

import click

from ..store import Store
from .options import POSITIVE, console, example, no_progress_option, store_option


@click.group(epilog=example(
    "matstore structures predict --formula SrTiO3 -k 5",
    "matstore structures show -8187949774823060506 --cif SrTiO3.cif"))
def structures():
    """Crystal structures: predict them from templates, show them, write CIF/POSCAR."""


@structures.command(epilog="""\b
Example:
  matstore ingest structures --file perov_5/val.csv --source-name perov5 --kind dft
  matstore structures predict --formula SrTiO3 --formula BaZrO3 -k 5 --templates perov5
  matstore structures predict --formula SrTiO3 -k 2 --templates perov5 --rank-energy chgnet
  matstore structures predict --where "c.composition_id IN (SELECT composition_id FROM candidates)" -k 5""")
@store_option
@click.option("--where", help="SQL condition on compositions (alias c): which compositions to predict.")
@click.option("--formula", "formulas", multiple=True, help="Predict this composition (repeatable; added to the store).")
@click.option("-k", "k", type=POSITIVE, default=5, show_default=True, help="Structures per composition.")
@click.option("--templates", help="Source whose known structures are the templates (default: every known structure).")
@click.option("--rule", type=click.Choice(["sites", "petti", "en"]), default="sites", show_default=True,
              help="Which equal-count element takes which site (docs/structures.md).")
@click.option("--volume", type=click.Choice(["coordination", "fitted", "template"]), default="coordination",
              show_default=True, help="Rescale the cell by volumes fitted to the templates per element and coordination "
                                      "(the site it takes), per element only, or keep the template's.")
@click.option("--batch-size", type=POSITIVE, default=200, show_default=True, help="Compositions per transaction.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the pyxtal fallback.")
@click.option("--no-fallback", is_flag=True, help="No pyxtal random structure where no template fits.")
@click.option("--no-resume", is_flag=True, help="Start a new run instead of continuing an interrupted one.")
@click.option("--exclude-same", is_flag=True,
              help="Never use a template of the composition itself (to measure prediction on known compositions).")
@click.option("--rank-energy", metavar="POTENTIAL",
              help="Re-order each composition's first two predictions by this potential's single-point energy "
                   "(chgnet, sevennet-0, ...; ~0.2 s per composition on one core).")
@no_progress_option
def predict(db, where, formulas, k, templates, rule, volume, batch_size, seed, no_fallback, no_resume, exclude_same,
            rank_energy, no_progress, quiet):
    """Predict K structures per composition from stored known structures (template substitution)."""
    from ..structures.prediction import predict_structures

    r = predict_structures(Store(db), where=where, k=k, templates=templates, rule=rule, volume=volume,
                           batch_size=batch_size, seed=seed, fallback=not no_fallback,
                           resume=not no_resume, progress=not (no_progress or quiet), formulas=list(formulas),
                           exclude_same=exclude_same, rank_energy=rank_energy)
    console.print(f"structures run {r.run_id}{' (resumed)' if r.resumed else ''}: {r.n_compositions} "
                  f"compositions, {r.n_structures} new structures, {r.n_fallback} by the pyxtal fallback, "
                  f"{r.n_none} without any, in {r.seconds:.1f} s (templates loaded once per call)")


@structures.command(epilog="""\b
Example:
  matstore structures predict --where "c.composition_id IN (SELECT composition_id FROM structures)" --exclude-same -k 1
  matstore structures parity --plot csp_parity.png""")
@store_option
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the parity figure (PNG) here.")
@click.option("--limit", type=POSITIVE, default=400, show_default=True, help="At most this many compositions.")
@click.option("--force", is_flag=True, help="Overwrite an existing --plot file.")
def parity(db, plot, limit, force):
    """CSP parity: rank-1 template predictions against the known structures of their composition."""
    from ..structures.parity import store_parity, summary

    if plot:
        from ..outpaths import check  # noqa: PLC0415

        check(plot, overwrite=force, option="--plot")   # refuse before the matcher's work
    df = store_parity(Store(db), limit)
    if df.height == 0:
        raise click.ClickException("no rank-1 template prediction of a composition that holds a known structure "
                                   "(predict known compositions with --exclude-same first)")
    s = summary(df)
    console.print(f"{s['n']} compositions: match {s['match_rate']:.2f} %, mean RMSD {s['rmsd']:.4f}, "
                  f"volume MAE {s['volume_mae']:.3f} Å³/atom ({s['volume_mape']:.1f} %)")
    if plot:
        from ..outpaths import check  # noqa: PLC0415
        from ..report.structure_section import csp_parity  # noqa: PLC0415

        path = check(plot, overwrite=force, option="--plot")
        csp_parity(df, "CSP parity").savefig(path, dpi=110)
        console.print(f"wrote {path}")


class SignedIdCommand(click.Command):
    """Structure ids are signed 64-bit hashes: a token like -123 is an id, not an option."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, [f"id:{a}" if re.fullmatch(r"-\d+", a) else a for a in args])


def structure_id_arg(ctx, param, value) -> int:
    try:
        return int(str(value).removeprefix("id:"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a structure id (an integer)") from None


@structures.command(cls=SignedIdCommand, epilog="""\b
Example:
  matstore structures show -8187949774823060506 --cif SrTiO3.cif""")
@click.argument("structure_id", callback=structure_id_arg)
@store_option
@click.option("--cif", "cif", type=click.Path(dir_okay=False), help="Also write the structure to this CIF file.")
@click.option("--poscar", "poscar", type=click.Path(dir_okay=False), help="Also write it as a POSCAR file.")
@click.option("--force", is_flag=True, help="Overwrite an existing --cif/--poscar file.")
def show(structure_id, db, cif, poscar, force):
    """Print a stored structure: formula, lattice, space group, sites, where it came from."""
    from ..structures.show import describe, write_file

    click.echo(describe(Store(db), structure_id))
    for path, fmt in ((cif, "cif"), (poscar, "poscar")):
        if path:
            write_file(Store(db), structure_id, path, fmt, overwrite=force)
            console.print(f"wrote {path}")


COMMANDS = [structures]
