"""`matstore ingest SOURCE`: the sources come from matstore.sources.SOURCES."""

from __future__ import annotations

import click

from ..store import Store
from .options import RegistryChoice, console, no_progress_option, store_option


def _sources():   # read when ingest runs or shows help: the sources import polars
    from ..sources import SOURCES  # noqa: PLC0415

    return list(SOURCES)


@click.command(epilog="""\b
Examples (structures: docs/structures.md):
  matstore ingest csv --file gaps.csv --source-name expt_gaps --kind experiment --prop band_gap=gap:eV
  matstore ingest structures --file perov_5/val.csv --source-name perov5 --kind dft \\
      --method GLLB-SC --prop band_gap=ind_gap:eV
  matstore ingest optimade --url https://optimade.materialsproject.org \\
      --filter 'elements HAS ALL "Mg","Mn","O" AND nelements=3'""")
@click.argument("source", type=RegistryChoice(_sources))
@store_option
@click.option("--file", "file", type=click.Path(dir_okay=False), help="Read this CSV/Parquet/JSON file.")
@click.option("--limit", type=int, help="Read at most this many rows.")
@click.option("--formula-col", help="Column holding the formula (default: found by name).")
@click.option("--id-col", help="Column holding the source's id (default: <first 16 hex of the file's sha256>#<row>).")
@click.option("--prop", "props", multiple=True, metavar="NAME=COLUMN[:UNIT]",
              help="Store COLUMN as property NAME, e.g. formation_energy_per_atom=target:eV/atom.")
@click.option("--source-name", help="csv: where the values come from, e.g. expt_gaps (default: csv).")
@click.option("--kind", type=click.Choice(["dft", "experiment"]),
              help="csv: the values are DFT or experiment (default: unknown).")
@click.option("--method", help="csv with --kind dft: level of theory, e.g. PBE or HSE06.")
@click.option("--api-url", "--url", "api_url",
              help="oqmd: API endpoint (default https://oqmd.org/oqmdapi/formationenergy); optimade: the base URL.")
@click.option("--page-size", type=int, help="oqmd/mp: rows per API page (one transaction each).")
@click.option("--filter", "filter_", help="oqmd: API filter, e.g. 'element_set=O AND ntypes<4'; "
              "optimade: an OPTIMADE filter, e.g. 'elements HAS ALL \"Mg\",\"O\" AND nelements=2'.")
@click.option("--format", "format_", type=click.Choice(["cif", "poscar", "extxyz", "json", "table", "mgmno"]),
              help="structures: the file's format (default: from its name).")
@click.option("--cif-col", help="structures: a table's CIF column (default: cif or structure).")
@click.option("--allow-partial", is_flag=True, default=None,
              help="structures/optimade: keep partially occupied sites as their majority species (default: reject).")
@click.option("--max-sites", type=int, help="structures/optimade: reject cells with more sites (default 500).")
@click.option("--min-distance", type=float,
              help="structures/optimade: reject atoms closer than this, in Å (default 0.5).")
@click.option("--timeout", type=float, help="oqmd: seconds before a request is retried.")
@click.option("--retries", type=int, help="oqmd: retries per page on HTTP 5xx/timeouts.")
@click.option("--matgan-curation", is_flag=True, help="All MatGAN curation rules below (5 sigma).")
@click.option("--exclude-elements", help="Drop compositions with any of these elements, e.g. He,Kr.")
@click.option("--matgan-elements", is_flag=True, help="Drop elements outside the MatGAN 85 or counts > 8.")
@click.option("--drop-single-element", is_flag=True, help="Drop one-element compositions.")
@click.option("--fe-sigma", type=float, help="Drop formation energies outside mean +- this many sigma.")
@click.option("--lowest-fe", is_flag=True, help="Keep the lowest formation energy per composition.")
@click.option("--no-resume", is_flag=True, help="Start afresh instead of resuming an interrupted ingest.")
@no_progress_option
def ingest(source, db, file, limit, formula_col, id_col, props, source_name, kind, method, api_url,
           page_size, filter_, format_, cif_col, allow_partial, max_sites, min_distance, timeout, retries,
           matgan_curation, exclude_elements, matgan_elements,
           drop_single_element, fe_sigma, lowest_fe, no_resume, no_progress, quiet):
    """Ingest materials from SOURCE, with optional curation."""
    from ..curation import Curation
    from ..ingest import run

    excluded = Curation.parse_elements(exclude_elements)
    cur = (Curation.matgan(excluded) if matgan_curation else
           Curation(excluded, matgan_elements, drop_single_element, fe_sigma, lowest_fe))
    r = run(Store(db), source, cur, resume=not no_resume, progress=not (no_progress or quiet), file=file, limit=limit,
            formula_col=formula_col, id_col=id_col, props=list(props), source_name=source_name,
            kind=kind, method=method, api_url=api_url, page_size=page_size, filter=filter_,
            timeout=timeout, retries=retries, format=format_, cif_col=cif_col, allow_partial=allow_partial,
            max_sites=max_sites, min_distance=min_distance)
    console.print(f"ingest {r.ingest_id} ({r.source}{', resumed' if r.resumed else ''}): "
                  f"{r.rows_seen} seen, {r.rows_kept} kept, {r.rows_rejected} rejected, "
                  f"{r.rows_curated} curated{_counts(r.curation)}, {r.rows_duplicate} duplicate"
                  + (f", {sum(r.flagged.values())} flagged{_counts(r.flagged)}" if r.flagged else "")
                  + f" in {r.seconds:.1f} s")


def _counts(d) -> str:
    """{'single_element': 687, ...} as ` (single_element 687, ...)`; nothing when empty."""
    if not d:
        return ""
    if not isinstance(d, dict):
        return f" {d}"
    return " (" + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in d.items()) + ")"


COMMANDS = [ingest]
