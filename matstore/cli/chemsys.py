"""`matstore enumerate`: every composition of a chemical system under an oxidation-state rule."""

from __future__ import annotations

import click

from ..store import Store
from .options import POSITIVE, console, store_option


def _counts(spec: str | None) -> dict[str, int]:
    out = {}
    for part in (spec or "").split(","):
        if part.strip():
            sym, _, n = part.partition("=")
            if not n.strip().isdigit():
                raise click.BadParameter(f"{part!r}: expected EL=N", param_hint="--max-counts")
            out[sym.strip()] = int(n)
    return out


@click.command("enumerate", epilog="\b\nExample:\n  matstore enumerate --db s.duckdb --elements Mg,Mn,O "
               "--oxidation-states Mg=2,Mn=2:4,O=-2 --max-atoms 28 --max-counts Mg=8,Mn=8,O=12")
@store_option
@click.option("--elements", required=True, metavar="A,B,C", help="The chemical system.")
@click.option("--oxidation-states", "oxidation", default=None, metavar="EL=N|EL=LO:HI,...",
              help="Oxidation-state range per element (others: pymatgen's common states' range).")
@click.option("--max-atoms", type=POSITIVE, default=28, show_default=True, help="Atoms per cell at most.")
@click.option("--max-counts", default=None, metavar="EL=N,...", help="Atoms of an element per cell at most.")
@click.option("--subsystems", is_flag=True, help="Also compositions lacking some of the elements.")
def enumerate_command(db, elements, oxidation, max_atoms, max_counts, subsystems):
    """Write every charge-neutral composition of a chemical system as an 'enumerate' run: mean
    oxidation states within their ranges, atoms per cell bounded (the rule is in the run's params)."""
    from ..chemical_systems import enumerate_system, write_run

    res = enumerate_system(elements, oxidation, max_atoms, _counts(max_counts), not subsystems)
    run_id, n_new = write_run(Store(db), res)
    console.print(f"run {run_id} done: {len(res.reduced):,} compositions ({len(res.cells):,} cell "
                  f"compositions), {n_new:,} new to the store")


COMMANDS = [enumerate_command]
