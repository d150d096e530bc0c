"""`matstore train` and `matstore models ...`: training presets (matstore.training.presets)
and the model registry (matstore.registry)."""

from __future__ import annotations

import click

from .. import output
from ..store import Store
from .options import (POSITIVE, RegistryChoice, console, device_option, example, no_progress_option,
                      output_options, store_option)


def preset_names():
    from ..training.presets import PRESETS  # noqa: PLC0415 (imports torch)

    return PRESETS


@click.command(epilog=example(
    "matstore train --model rf-bg --target-source oqmd --max-rows 20000",
    "matstore train --model bg-two-stage --target-source oqmd --ensemble 5 --epochs 30"))
@store_option
@click.option("--model", "preset", required=True, type=RegistryChoice(preset_names),
              help="Training preset (matstore.training.presets).")
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
@click.option("--hyper", "hyper", multiple=True, metavar="KEY=VALUE",
              help="Any hyperparameter or config field of the preset (VALUE as JSON; nested config "
                   "fields dotted: critic.norm=batch). Repeatable.")
@click.option("--ensemble", "ensemble", type=POSITIVE, default=None, metavar="K",
              help="Predictors: train K members (seeds SEED..SEED+K-1) in one version; predictions "
                   "store their mean and standard deviation.")
@click.option("--two-stage/--one-stage", "two_stage", default=None,
              help="Band-gap predictors: a metal classifier + a regressor on the non-metals "
                   "(default: the preset's; bg-two-stage is two-stage).")
@click.option("--valid-only/--all-compositions", "valid_only", default=None,
              help="Generators: learn only the selected compositions that are charge-neutral and "
                   "electronegativity-balanced (default: the preset's; transformer-mp is valid-only).")
@device_option
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the split and training.")
@no_progress_option
def train(db, preset, on, target_source, name, epochs, batch_size, lr, max_rows, max_steps, clip, hyper,
          ensemble, two_stage, valid_only, device, seed, no_progress, quiet):
    """Train a preset on the store's data and save it as a new model version."""
    import json
    import warnings

    from ..training import LowDecodableWarning, train as run_train
    from ..training.presets import PresetError, parse_overrides

    extra, config = parse_overrides(preset, hyper)
    from ..bounds import check_value

    for key, value in (("lr", lr), ("clip", clip), ("epochs", epochs), ("batch_size", batch_size)):
        if value is None:
            continue
        value = check_value(key, value, None if key == "clip" else 1)  # positive, finite
        if key in extra:
            raise PresetError(f"--hyper {key}: given twice (also as --{key.replace('_', '-')})")
        extra[key] = value
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LowDecodableWarning)
        mv = run_train(Store(db), preset, on=on, target_source=target_source, device=device, seed=seed,
                       epochs=extra.pop("epochs", None), batch_size=extra.pop("batch_size", None),
                       max_rows=max_rows, name=name, max_steps=max_steps, config=config or None,
                       progress=not (no_progress or quiet), ensemble=ensemble, two_stage=two_stage,
                       valid_only=valid_only, **extra)
    for w in caught:
        if issubclass(w.category, LowDecodableWarning):
            click.echo(f"warning: {w.message}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    shown = {k: v for k, v in mv.metrics.items() if k not in ("history", "members")}
    console.print(f"saved {mv.ref} (model id {mv.model_id}, {mv.kind}): {json.dumps(shown)}")
    if "sample" in mv.metrics:
        s = mv.metrics["sample"]
        console.print(f"{mv.ref}: {s['decodable_pct']:.1f}% of {s['n_samples']:,} samples decodable, "
                      f"{s['uniqueness_pct']:.1f}% unique, {s['validity_pct']:.1f}% valid")


@click.group(epilog=example("matstore models list", "matstore models show oqmd-attn-fe"))
def models():
    """List, show, export, import, rename and delete model versions."""


@models.command("list", epilog=example("matstore models list --json"))
@store_option
@output_options
def models_list(db, fmt, parquet, limit_rows):
    """One row per model version (shown: a summary of the metrics; --json/--csv: all of them)."""
    import polars as pl

    from ..registry import list_models

    df = list_models(Store(db))
    if not parquet and fmt not in ("csv", "json"):
        df = df.with_columns(pl.col("metrics").map_elements(output.json_summary, return_dtype=pl.Utf8))
    output.emit(df, fmt, parquet, max_rows=limit_rows)


@models.command("show", epilog=example("matstore models show oqmd-attn-fe"))
@click.argument("ref")
@store_option
def models_show(ref, db):
    """Everything recorded about NAME[@VERSION] or a model id (weights left out), as JSON."""
    import json

    from ..registry import show_model

    click.echo(json.dumps(show_model(Store(db), ref), indent=2, default=str))


@models.command("export", epilog=example("matstore models export models.parquet rf-bg@1 elemnet-magpie-fe"))
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("refs", nargs=-1)
@store_option
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists (never the store).")
def models_export(file, refs, db, overwrite):
    """Write model versions REFS (default: all), weights included, to one Parquet FILE."""
    from ..registry import export_models

    n = export_models(Store(db), file, list(refs) or None, overwrite=overwrite)
    console.print(f"exported {n} model version(s) to {file}")


@models.command("import", epilog=example(
    "matstore models import models.parquet",
    "matstore models import --pretrained oqmd-attn-fe"))
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--pretrained", "pretrained_name", metavar="NAME",
              help="Import a model that ships with matstore (see `matstore models pretrained`).")
@store_option
def models_import(file, pretrained_name, db):
    """Read model versions from an export FILE, or a shipped one with --pretrained NAME
    (same weights under the same name: skipped)."""
    from ..registry import import_models

    if bool(file) == bool(pretrained_name):
        raise click.UsageError("give an export FILE or --pretrained NAME (one of them)")
    if pretrained_name:
        from ..pretrained import import_pretrained

        r = import_pretrained(Store(db), pretrained_name)
    else:
        r = import_models(Store(db), file)
    for mv in r.imported:
        console.print(f"imported {mv.identity} (model id {mv.model_id})")
    for s in r.skipped:
        console.print(f"skipped {s}")


@models.command("pretrained", epilog=example("matstore models pretrained --json"))
@output_options
def models_pretrained(fmt, parquet, limit_rows):
    """List the models that ship with matstore: training data, selection and metrics."""
    import json

    import polars as pl

    from ..pretrained import manifest

    rows = [{"name": k, "model": e["model"], "mib": round(e["bytes"] / 2**20, 2),
             "data": ", ".join(e["data"]), "metrics": json.dumps(e["metrics"]), "script": e["script"]}
            for k, e in sorted(manifest().items())]
    schema = {c: pl.Utf8 for c in ("name", "model", "data", "metrics", "script")} | {"mib": pl.Float64}
    output.emit(pl.DataFrame(rows, schema=schema), fmt, parquet, max_rows=limit_rows)


@models.command("convert", epilog=example("matstore models convert rf-bg@1 --trust"))
@click.argument("refs", nargs=-1)
@click.option("--trust", is_flag=True, help="I trust where this store came from (reads pickles).")
@store_option
def models_convert(refs, trust, db):
    """Rewrite forests pickled by an older matstore (REFS, default: all) as plain arrays."""
    from ..registry import convert_forests

    done = convert_forests(Store(db), list(refs) or None, trust=trust)
    console.print(f"converted {', '.join(done)}" if done else "no pickled forests to convert")


@models.command("rename", epilog=example("matstore models rename rf-bg rf-bg-oqmd --db study.duckdb"))
@click.argument("old")
@click.argument("new")
@store_option
def models_rename(old, new, db):
    """Rename every version of model OLD to NEW (a name not used yet); predictions stay with them."""
    from ..registry import rename

    n = rename(Store(db), old, new)
    console.print(f"renamed {n} version(s) of {old} to {new}")


@models.command("delete", epilog=example("matstore models delete rf-bg@2 --db study.duckdb"))
@click.argument("ref")
@store_option
def models_delete(ref, db):
    """Delete one model version REF (NAME@N, NAME#SHA or a model id) and its split sets; refused
    while predictions, stability rows, runs or campaigns use it."""
    from ..registry import delete

    console.print(f"deleted {delete(Store(db), ref)}")


COMMANDS = [train, models]
