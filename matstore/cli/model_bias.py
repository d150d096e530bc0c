"""`matstore bias`: a formation-energy model's error on the hull, measured on known phases."""

from __future__ import annotations

import click

from .. import output
from ..store import Store
from .options import device_option, example, no_progress_option, output_options, store_option


@click.command(epilog=example("matstore bias --db study.duckdb --model oqmd-attn-fe --reference oqmd"))
@store_option
@click.option("--model", "model", required=True, help="Formation-energy predictor NAME[@VERSION] or id.")
@click.option("--reference", default=None,
              help="materials.source whose known phases make the hull (default: the only one "
                   "with formation energies).")
@device_option
@no_progress_option
@output_options
def bias(db, model, reference, device, no_progress, quiet, fmt, parquet, limit_rows):
    """Measure how far a FE model places the reference's known phases (those it did not train on)
    from their DFT e_above_hull: mean and MAE overall, by number of elements and by anion family;
    screens show it beside every hit."""
    from ..stability.bias import measure

    df = measure(Store(db), model, reference=reference, device=device,
                 progress=not (no_progress or quiet))
    output.emit(df, fmt, parquet, max_rows=limit_rows)


COMMANDS = [bias]
