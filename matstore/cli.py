"""The `matstore` command: parse options, call the library, print. No logic lives here."""

from __future__ import annotations

import functools
import sys

import click
import duckdb
from rich.console import Console

from . import output
from .errors import MatstoreError
from .store import DEFAULT_PATH, Store
from .validity import DEFAULT_SET, OXIDATION_SETS

console = Console(stderr=True)
POSITIVE = click.IntRange(min=1)          # counts and sizes: 0 or less would do nothing
TOLERANCE = click.FloatRange(0, 1, min_open=True, max_open=True)   # see options.decode_tolerance


def store_option(f):
    # the default is named, not resolved: help must not depend on (or glue ./ to) $MATSTORE_DB
    return click.option("--db", "db", envvar="MATSTORE_DB", default=None, show_default=False,
                        help=f"Store file (default: $MATSTORE_DB if set, else {DEFAULT_PATH} in "
                             f"the current folder).")(f)


def output_options(f):
    """The one set of output options of every command that prints rows (data on stdout). The
    command gets fmt 'auto' when no format flag was given: a table where it fits, else records."""
    inner = f

    @functools.wraps(inner)
    def f(*args, **kwargs):
        kwargs["fmt"] = kwargs.get("fmt") or "auto"
        return inner(*args, **kwargs)

    f = click.option("--table", "fmt", flag_value="table",
                     help="Show a table even where it is wider than the terminal.")(f)
    f = click.option("--records", "fmt", flag_value="records",
                     help="Show one `column | value` line per field, records separated.")(f)
    f = click.option("--csv", "fmt", flag_value="csv", help="Write CSV to stdout.")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Write JSON to stdout.")(f)
    f = click.option("--parquet", "parquet", type=click.Path(dir_okay=False), default=None,
                     help="Write the rows to this Parquet file instead.")(f)
    f = click.option("--limit-rows", type=click.IntRange(min=0), default=output.DEFAULT_LIMIT,
                     show_default=True,
                     help="Rows shown as a table or records (CSV, JSON, Parquet: all rows). "
                          "Default view: a table where it fits the width, records otherwise.")(f)
    return f


def param_option(f):
    return click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                        help="Bind VALUE to $NAME in the SQL (repeatable); never pasted into it.")(f)


def no_progress_option(f):
    f = click.option("--quiet", "quiet", is_flag=True, hidden=True,
                     help="Old name of --no-progress.")(f)
    return click.option("--no-progress", is_flag=True, help="No progress bar.")(f)


def _user_error(e: BaseException) -> bool:
    """A plain ValueError/RuntimeError counts as matstore refusing input only when matstore's own
    code raised it; one from inside numpy, torch, polars... is a bug and shows as a traceback."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("matstore.")


class MatstoreGroup(click.Group):
    """Turn matstore's own errors (and DuckDB's, explained) into one line; anything else is a bug
    and keeps its traceback."""

    def invoke(self, ctx):
        from .query import friendly

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors, --help (exit 0), ctrl-c
        except duckdb.Error as e:
            _fail(str(friendly(e, "error")))
        except (MatstoreError, FileNotFoundError) as e:
            _fail(f"error: {e}")
        except (ValueError, RuntimeError) as e:
            if not _user_error(e):
                raise
            _fail(f"error: {e}")


def _fail(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)  # one line, unwrapped
    sys.exit(1)


@click.group(cls=MatstoreGroup)
@click.version_option(package_name="matstore")
@click.option("--read-only", is_flag=True, envvar="MATSTORE_READ_ONLY",
              help="Never write to the store: commands that would write fail instead.")
@click.pass_context
def main(ctx, read_only):
    """Materials discovery in one DuckDB file."""
    if read_only:  # every Store this command makes is read-only; reset when the command ends
        from .store import READ_ONLY

        token = READ_ONLY.set(True)
        ctx.call_on_close(lambda: READ_ONLY.reset(token))


@main.command()
@click.argument("path", required=False)
@store_option
def init(path, db):
    """Create (or upgrade) a store file: PATH, or --db like every other command (PATH wins)."""
    store = Store.init(path or db)
    console.print(f"store {store.path} at schema version {store.version()}")


@main.command()
@click.argument("sql")
@store_option
@click.option("--write", is_flag=True, help="Allow statements that change the store.")
@param_option
@output_options
def query(sql, db, write, params, fmt, parquet, limit_rows):
    """Run SQL against the store (read-only unless --write), e.g.
    matstore query "SELECT * FROM candidates WHERE n_elements >= $n" -p n=3"""
    from .query import parse_params, run_query

    df = run_query(Store(db), sql, write=write, params=parse_params(params))
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@main.command()
@click.argument("source", type=click.Choice(["oqmd", "mp", "icsd", "csv", "builtin"]))
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
@click.option("--api-url", help="oqmd: API endpoint (default https://oqmd.org/oqmdapi/formationenergy).")
@click.option("--page-size", type=int, help="oqmd/mp: rows per API page (one transaction each).")
@click.option("--filter", "filter_", help="oqmd: API filter, e.g. 'element_set=O AND ntypes<4'.")
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
           page_size, filter_, timeout, retries, matgan_curation, exclude_elements, matgan_elements,
           drop_single_element, fe_sigma, lowest_fe, no_resume, no_progress, quiet):
    """Ingest materials from SOURCE (oqmd, mp, icsd, csv, builtin), with optional curation."""
    from .curation import Curation
    from .ingest import run

    excluded = Curation.parse_elements(exclude_elements)
    cur = (Curation.matgan(excluded) if matgan_curation else
           Curation(excluded, matgan_elements, drop_single_element, fe_sigma, lowest_fe))
    r = run(Store(db), source, cur, resume=not no_resume, progress=not (no_progress or quiet), file=file, limit=limit,
            formula_col=formula_col, id_col=id_col, props=list(props), source_name=source_name,
            kind=kind, method=method, api_url=api_url, page_size=page_size, filter=filter_,
            timeout=timeout, retries=retries)
    console.print(f"ingest {r.ingest_id} ({r.source}{', resumed' if r.resumed else ''}): "
                  f"{r.rows_seen} seen, {r.rows_kept} kept, {r.rows_rejected} rejected, "
                  f"{r.rows_curated} curated{_counts(r.curation)}, {r.rows_duplicate} duplicate "
                  f"in {r.seconds:.1f} s")


def _counts(d) -> str:
    """{'single_element': 687, ...} as ` (single_element 687, ...)`; nothing when empty."""
    if not d:
        return ""
    if not isinstance(d, dict):
        return f" {d}"
    return " (" + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in d.items()) + ")"


@main.command()
@store_option
@click.option("--provenance", "show_provenance", is_flag=True,
              help="Also show who/what produced what: ingests, models (data hash, seed), runs.")
@output_options
def info(db, show_provenance, fmt, parquet, limit_rows):
    """Schema version, rows per table and source, ingests."""
    from .info import store_info

    i = store_info(Store(db, read_only=True))
    console.print(f"[bold]{i.path}[/bold]  schema {i.schema_version} (code {i.code_schema_version})")
    sections = {"tables": i.table_counts, "materials per source": i.source_counts, "ingests": i.ingests}
    if show_provenance:
        from .provenance import provenance

        sections.update(provenance(Store(db, read_only=True)).tables())
    output.emit_sections(sections, fmt, parquet, max_rows=limit_rows,
                         meta={"path": str(i.path), "schema_version": i.schema_version,
                               "code_schema_version": i.code_schema_version})


# --- generation, prediction, screens, report, demo (matstore.runner/predict/report/pipeline) ---
@main.command()
@store_option
@click.option("--model", "model", default=None, help="Generator NAME[@VERSION] or model id.")
@click.option("-n", "n", type=POSITIVE, default=None, help="Samples to draw.")
@click.option("--batch-size", type=POSITIVE, default=None,
              help="Samples per batch and transaction (default: 8192 on CPU, 262144 on CUDA).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the sampling.")
@click.option("--device", default=None, help="cuda or cpu (default: cuda when present).")
@click.option("--tolerance", type=TOLERANCE, default=None,
              help="Decoding tolerance, 0 < T < 1 (default: matstore.features.onehot's).")
@click.option("--resume", "resume_id", type=int, default=None,
              help="Continue an interrupted run from its last committed batch.")
@no_progress_option
@click.option("--validate", is_flag=True, help="Also store validity flags of new compositions.")
@click.option("--featurize", "featurizers", multiple=True,
              help="Also store this featurizer's vectors of new compositions (repeatable).")
@click.option("--predict", "predictors", multiple=True,
              help="Also predict with this model NAME[@VERSION] (repeatable).")
@click.option("--stability", "stability_ref", default=None, metavar="SOURCE",
              help="Also place the --predict formation energies on the hull of SOURCE's known phases.")
def generate(db, model, n, batch_size, seed, device, tolerance, resume_id, no_progress, quiet,
             validate, featurizers, predictors, stability_ref):
    """Sample a generator into the store, one transaction per batch (--validate, --featurize,
    --predict: the full pipeline per batch, for the batch's compositions that lack it)."""
    from . import runner

    store = Store(db)
    no_progress = no_progress or quiet
    if resume_id is not None:
        res = runner.resume(store, resume_id, device=device, progress=not no_progress)
    else:
        if not model or not n:
            raise click.UsageError("generate needs --model NAME and -n N (or --resume RUN_ID)")
        stages = runner.Stages(validate, tuple(featurizers), tuple(predictors), stability_ref)
        res = runner.generate(store, model, n, batch_size=batch_size, seed=seed, device=device,
                              tolerance=tolerance, progress=not no_progress, stages=stages)
    console.print(f"run {res.run_id} {res.status}: {res.n_samples:,} samples, "
                  f"{res.n_decodable:,} decodable, {res.n_new_compositions:,} new compositions, "
                  f"{res.samples_per_s:,.0f} samples/s"
                  + ("" if not res.written else
                     ", rows written: " + ", ".join(f"{k} {v:,}" for k, v in res.written.items())))


@main.command()
@store_option
@click.option("--model", "model", required=True, help="Predictor NAME[@VERSION] or model id.")
@click.option("--where", default=None,
              help="SQL condition on compositions (alias c), e.g. "
                   "\"composition_id IN (SELECT composition_id FROM candidates)\"; values "
                   "as $NAME with -p NAME=VALUE.")
@param_option
@click.option("--device", default=None, help="cuda or cpu (default: cuda when present).")
@click.option("--batch-size", type=POSITIVE, default=65536, show_default=True,
              help="Compositions per prediction batch and transaction.")
@click.option("--chunk-size", type=POSITIVE, default=None, hidden=True, help="Old name of --batch-size.")
@no_progress_option
def predict(db, model, where, params, device, batch_size, chunk_size, no_progress, quiet):
    """Predict a property for compositions lacking that model version's predictions."""
    from .predict import predict as run_predict
    from .query import parse_params

    res = run_predict(Store(db), model, where=where, chunk_size=chunk_size or batch_size, device=device,
                      progress=not (no_progress or quiet), params=parse_params(params))
    console.print(f"{res.model}: {res.n_predicted:,} {res.property} predictions "
                  f"({res.n_null:,} not featurizable) in {res.seconds:.1f} s")


@main.command()
@store_option
@click.option("--model", "model", default=None,
              help="Formation-energy predictor NAME[@VERSION] or id (default: the known phases).")
@click.option("--reference", default=None,
              help="materials.source whose known phases make the hull (default: the only one "
                   "with formation energies).")
@no_progress_option
def stability(db, model, reference, no_progress, quiet):
    """Energy above the convex hull of a source's known phases, with decomposition products."""
    from .stability import compute

    res = compute(Store(db), model=model, reference=reference, progress=not (no_progress or quiet))
    console.print(f"stability of {res.model or 'the known phases'} vs {res.reference} "
                  f"({res.n_phases:,} reference phases): {res.n_computed:,} rows, "
                  f"{res.n_below:,} below the known hull, in {res.seconds:.1f} s"
                  + (f" (run {res.run_id})" if res.run_id else ""))


@main.command()
@click.argument("name", required=False)
@store_option
@output_options
def screen(name, db, fmt, parquet, limit_rows):
    """Run the screen_NAME view (no NAME: list the screens)."""
    from .report import run_screen

    df = run_screen(Store(db), name)
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@main.command()
@store_option
@click.option("--run", "run_id", type=int, default=None, help="Generation run (default: latest).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder to write the report into.")
def report(db, run_id, out):
    """Write PNG plots and an index.html about a generation run."""
    from .report import write_report

    path = write_report(Store(db), out, run_id=run_id)
    console.print(f"report written to {path}")


@main.command()
@store_option
@click.option("--samples", type=POSITIVE, default=20000, show_default=True, help="Samples to generate.")
@click.option("--gan-epochs", type=POSITIVE, default=None, help="GAN epochs (default: the demo's).")
@click.option("--fe-epochs", type=POSITIVE, default=None, help="Predictor epochs (default: the demo's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of every step.")
@click.option("--device", default=None, help="cuda or cpu (default: cuda when present).")
@click.option("--top", type=POSITIVE, default=20, show_default=True, help="Candidates shown at the end.")
@click.option("--gan-rows", type=click.IntRange(min=0), default=4000, show_default=True,
              help="MP compositions the demo GAN trains on (0: all).")
def demo(db, samples, gan_epochs, fe_epochs, seed, device, top, gan_rows):
    """The whole pipeline on the builtin data: ingest, train, generate, validate, predict, screen."""
    from .pipeline import run_demo

    run_demo(Store(db or "demo.duckdb"), samples=samples, gan_epochs=gan_epochs,
             seed=seed, device=device, top=top, console=console, gan_rows=gan_rows or None)


@main.command()
@store_option
@click.option("--featurizer", "featurizer", required=True,
              type=click.Choice(["onehot", "magpie", "fractions"]), help="Featurizer to compute.")
@click.option("--where", default=None, help="SQL condition on compositions (alias c), e.g. "
              "\"n_elements >= $n\" -p n=3.")
@param_option
@click.option("--batch-size", type=POSITIVE, default=100_000, show_default=True,
              help="Compositions per batch and transaction.")
@no_progress_option
def featurize(db, featurizer, where, params, batch_size, no_progress, quiet):
    """Compute a featurizer for compositions lacking its current version's rows."""
    from .featurize import featurize_store
    from .query import parse_params

    r = featurize_store(Store(db), featurizer, where=where, batch_size=batch_size,
                        progress=not (no_progress or quiet), params=parse_params(params))
    console.print(f"{featurizer} v{r.version}: {r.written:,} rows written for {r.pending:,} pending "
                  f"compositions ({r.not_encodable:,} not encodable, empty vector) in {r.seconds:.1f} s")


@main.command()
@store_option
@click.option("--where", default=None, help="SQL condition on compositions (alias c), e.g. "
              "\"n_elements >= $n\" -p n=3.")
@param_option
@click.option("--batch-size", type=POSITIVE, default=100_000, show_default=True,
              help="Compositions per batch and transaction.")
@no_progress_option
@click.option("--oxidation-set", type=click.Choice(list(OXIDATION_SETS)), default=DEFAULT_SET,
              show_default=True, help="smact oxidation-state set (the views use the default).")
def validate(db, where, params, batch_size, no_progress, quiet, oxidation_set):
    """Charge neutrality / electronegativity / smact_validity and an oxidation-state assignment
    for compositions lacking them under one oxidation-state set."""
    from .featurize import validate_store
    from .query import parse_params

    r = validate_store(Store(db), where=where, batch_size=batch_size,
                       progress=not (no_progress or quiet), oxidation_set=oxidation_set,
                       params=parse_params(params))
    console.print(f"checker {r.version}: {r.written:,} rows written for {r.pending:,} pending "
                  f"compositions ({r.not_encodable:,} outside smact's data: NULL flags) in {r.seconds:.1f} s")


@main.group()
def export():
    """Write the store in a form other tools read (Parquet)."""


@export.command("parquet")
@click.argument("out_dir", type=click.Path(file_okay=False))
@store_option
@click.option("--overwrite", is_flag=True, help="Replace OUT_DIR if it exists.")
@click.option("--only", "tables", multiple=True, metavar="TABLE",
              help="Export only this table (repeatable).")
@output_options
def export_parquet_cmd(out_dir, db, overwrite, tables, fmt, parquet, limit_rows):
    """One folder of Parquet per table (generated partitioned by run_id) plus manifest.json."""
    from .export import export_parquet

    summary = export_parquet(Store(db, read_only=True), out_dir, overwrite=overwrite, tables=list(tables) or None)
    console.print(f"exported to {out_dir}")
    output.emit(summary.select("table", "rows", "partitioned_by"), fmt, parquet, max_rows=limit_rows)


@main.command()
@click.argument("other", type=click.Path(dir_okay=False))
@store_option
@output_options
def merge(other, db, fmt, parquet, limit_rows):
    """Import a collaborator's store OTHER into this one (ids remapped, nothing twice)."""
    from .merge import merge as merge_stores

    r = merge_stores(Store(db), other)
    note = f", upgraded a copy from schema {r.other_schema_version}" if r.upgraded else ""
    console.print(f"merged {other}{note}: {r.total_added} rows added")
    output.emit(r.added, fmt, parquet, max_rows=limit_rows)


# --- training and the model registry (matstore.training, matstore.registry) ---
@main.command()
@store_option
@click.option("--model", "preset", required=True,
              help="Preset: gan-oqmd, gan-mp, gan-icsd, ae, cnn-fe, cnn-bg, elemnet-fe, "
                   "elemnet-magpie-fe, elemnet-magpie-bg, rf-fe, rf-bg.")
@click.option("--on", "on", default=None, help="SQL returning composition_id: the training rows.")
@click.option("--target-source", default=None,
              help="Predictors: the source whose values to learn (default: the one DFT source).")
@click.option("--name", default=None, help="Registry name (default: the preset's).")
@click.option("--epochs", type=POSITIVE, default=None, help="Epochs (default: the preset's).")
@click.option("--batch-size", type=POSITIVE, default=None, help="Rows per step (default: the preset's).")
@click.option("--lr", type=float, default=None, help="Learning rate (predictors, autoencoder).")
@click.option("--max-rows", type=POSITIVE, default=None, help="Train on a seeded random subset.")
@click.option("--max-steps", type=POSITIVE, default=None, help="Stop after this many optimizer steps.")
@click.option("--clip", type=float, default=None, help="GANs: weight clipping to ±CLIP instead of GP.")
@click.option("--device", default=None, help="cuda or cpu (default: cuda when present).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the split and training.")
@no_progress_option
def train(db, preset, on, target_source, name, epochs, batch_size, lr, max_rows, max_steps, clip, device,
          seed, no_progress, quiet):
    """Train a preset on the store's data and save it as a new model version."""
    import json

    from .training import train as run_train

    extra = {k: v for k, v in (("lr", lr), ("clip", clip)) if v is not None}
    mv = run_train(Store(db), preset, on=on, target_source=target_source, epochs=epochs, device=device,
                   seed=seed, max_rows=max_rows, batch_size=batch_size, name=name, max_steps=max_steps,
                   progress=not (no_progress or quiet), **extra)
    shown = {k: v for k, v in mv.metrics.items() if k not in ("history",)}
    console.print(f"saved {mv.ref} (model id {mv.model_id}, {mv.kind}): {json.dumps(shown)}")


@main.group()
def models():
    """List, show, export and import model versions."""


@models.command("list")
@store_option
@output_options
def models_list(db, fmt, parquet, limit_rows):
    """One row per model version (shown: a summary of the metrics; --json/--csv: all of them)."""
    import polars as pl

    from .registry import list_models

    df = list_models(Store(db))
    if not parquet and fmt not in ("csv", "json"):
        df = df.with_columns(pl.col("metrics").map_elements(output.json_summary, return_dtype=pl.Utf8))
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@models.command("show")
@click.argument("ref")
@store_option
def models_show(ref, db):
    """Everything recorded about NAME[@VERSION] or a model id (weights left out), as JSON."""
    import json

    from .registry import show_model

    click.echo(json.dumps(show_model(Store(db), ref), indent=2, default=str))


@models.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("refs", nargs=-1)
@store_option
def models_export(file, refs, db):
    """Write model versions REFS (default: all), weights included, to one Parquet FILE."""
    from .registry import export_models

    n = export_models(Store(db), file, list(refs) or None)
    console.print(f"exported {n} model version(s) to {file}")


@models.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@store_option
def models_import(file, db):
    """Read model versions from an export FILE (same weights under the same name: skipped)."""
    from .registry import import_models

    r = import_models(Store(db), file)
    for mv in r.imported:
        console.print(f"imported {mv.ref} (model id {mv.model_id})")
    for s in r.skipped:
        console.print(f"skipped {s}")


@models.command("convert")
@click.argument("refs", nargs=-1)
@click.option("--trust", is_flag=True, help="I trust where this store came from (reads pickles).")
@store_option
def models_convert(refs, trust, db):
    """Rewrite forests pickled by an older matstore (REFS, default: all) as plain arrays."""
    from .registry import convert_forests

    done = convert_forests(Store(db), list(refs) or None, trust=trust)
    console.print(f"converted {', '.join(done)}" if done else "no pickled forests to convert")


if __name__ == "__main__":
    main()
