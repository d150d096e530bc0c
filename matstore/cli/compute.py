"""`matstore generate | predict | stability | featurize | validate`: fill the store's
computed tables (choices from the featurizer and oxidation-set registries)."""

from __future__ import annotations

import click

from .. import output
from ..store import Store
from .options import (POSITIVE, TOLERANCE, RegistryChoice, console, device_option, example,
                      executor_options, no_progress_option, output_options, param_option, store_option,
                      where_option)


def _featurizers():   # read when featurize runs or shows help: the featurizers import pymatgen
    from ..features import FEATURIZERS  # noqa: PLC0415

    return list(FEATURIZERS)


def _oxidation_sets():
    from ..validity import OXIDATION_SETS  # noqa: PLC0415

    return list(OXIDATION_SETS)


def _default_set() -> str:
    from ..validity import DEFAULT_SET  # noqa: PLC0415

    return DEFAULT_SET


@click.command(epilog="\b\nExamples:\n  matstore generate --db s.duckdb --model transformer-mp --elements Mg,Mn,O -n 10000\n"
                      "  matstore generate --db s.duckdb --model cccgan-mgmno --composition Mg2MnO4 -n 300\n"
                      "  matstore generate --db s.duckdb --model gan-mp-small -n 1000000 --executor processes:2")
@store_option
@click.option("--model", "model", default=None, help="Generator NAME[@VERSION] or model id.")
@click.option("--composition", default=None, metavar="FORMULA",
              help="Structure generators (cccgan): the cell composition to generate structures for, "
                   "e.g. Mg2MnO4 (as written, not reduced).")
@click.option("-n", "n", type=POSITIVE, default=None, help="Samples to draw.")
@click.option("--batch-size", type=POSITIVE, default=None,
              help="Samples per batch and transaction (default: 8192 on CPU, 262144 on CUDA).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the sampling.")
@device_option
@click.option("--tolerance", type=TOLERANCE, default=None,
              help="Decoding tolerance, 0 < T < 1 (default: matstore.features.onehot's).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Transformer generators: sampling temperature for this run (default: the version's).")
@click.option("--top-p", "top_p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Transformer generators: nucleus (top-p) for this run (default: the version's).")
@click.option("--elements", default=None, metavar="A,B,C",
              help="Transformer generators: sample within this chemical system only (masked "
                   "sampling; recorded in the run).")
@click.option("--all-elements", is_flag=True,
              help="With --elements: every sample holds all of the system's elements.")
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
@executor_options
def generate(db, model, composition, n, batch_size, seed, device, tolerance, temperature, top_p,
             elements, all_elements, resume_id, no_progress, quiet, validate, featurizers, predictors,
             stability_ref, executor, executor_insecure):
    """Sample a generator into the store, one transaction per batch (--validate, --featurize,
    --predict: the full pipeline per batch, for the batch's compositions that lack it)."""
    from .. import runner

    from .. import structgen

    store = Store(db)
    no_progress = no_progress or quiet
    if composition or (resume_id is not None and structgen.is_structure_run(store, resume_id)):
        if executor != "local":
            raise click.UsageError("--executor applies to composition generators; structure "
                                   "generators (--composition) run in this process")
        if resume_id is not None:
            res = structgen.resume(store, resume_id, device=device, progress=not no_progress)
        elif not model or not n:
            raise click.UsageError("generate --composition needs --model NAME and -n N")
        else:
            res = structgen.generate(store, model, composition, n, batch_size=batch_size, seed=seed,
                                     device=device or "cpu", progress=not no_progress)
        console.print(f"run {res.run_id} done: {res.n_samples:,} samples, {res.n_classified:,} classified "
                      f"as the requested composition, {res.n_written:,} new structures written "
                      f"({res.seconds:.1f} s)")
        return
    if resume_id is not None:
        if temperature is not None or top_p is not None or elements or all_elements:
            raise click.UsageError("--resume draws with the run's own sampling settings; "
                                   "drop --temperature / --top-p / --elements")
        res = runner.resume(store, resume_id, device=device, progress=not no_progress,
                            executor=executor, insecure=executor_insecure)
    else:
        if not model or not n:
            raise click.UsageError("generate needs --model NAME and -n N (or --resume RUN_ID)")
        stages = runner.Stages(validate, tuple(featurizers), tuple(predictors), stability_ref)
        res = runner.generate(store, model, n, batch_size=batch_size, seed=seed, device=device,
                              tolerance=tolerance, progress=not no_progress, stages=stages,
                              temperature=temperature, top_p=top_p, elements=elements,
                              all_elements=all_elements, executor=executor, insecure=executor_insecure)
    console.print(f"run {res.run_id} {res.status}: {res.n_samples:,} samples, "
                  f"{res.n_decodable:,} decodable, {res.n_new_compositions:,} new compositions, "
                  f"{res.samples_per_s:,.0f} samples/s"
                  + ("" if not res.written else
                     ", rows written: " + ", ".join(f"{k} {v:,}" for k, v in res.written.items())))
    if not quiet:  # measured after the run is committed (seconds: Fréchet fit on <= 20k per side)
        from ..quality import measure, summary

        console.print(summary(measure(store, res.run_id)), markup=False, highlight=False, soft_wrap=True)


@click.command(epilog=example("matstore predict --db study.duckdb --model oqmd-attn-fe --formula Cu2ZnSnS4",
                              "matstore predict --db study.duckdb --model oqmd-attn-fe --executor processes:2"))
@store_option
@click.option("--model", "model", required=True, help="Predictor NAME[@VERSION] or model id.")
@where_option
@param_option
@device_option
@click.option("--batch-size", type=POSITIVE, default=65536, show_default=True,
              help="Compositions per prediction batch and transaction.")
@click.option("--chunk-size", type=POSITIVE, default=None, hidden=True, help="Old name of --batch-size.")
@click.option("--formula", "formulas", multiple=True, metavar="FORMULA",
              help="Predict these formulas and print them, storing nothing (repeatable).")
@no_progress_option
@output_options
@executor_options
def predict(db, model, where, params, device, batch_size, chunk_size, formulas, no_progress, quiet,
            fmt, parquet, limit_rows, executor, executor_insecure):
    """Predict a property for compositions lacking that model version's predictions."""
    from ..predict import predict as run_predict
    from ..query import parse_params

    if formulas:
        from .. import output  # noqa: PLC0415
        from ..predict import PredictError, predict_formulas  # noqa: PLC0415

        if where or params:
            raise PredictError("--formula predicts the formulas given; --where/-p select stored ones")
        output.emit(predict_formulas(Store(db), model, list(formulas), device=device), fmt, parquet,
                    max_rows=limit_rows)
        return

    res = run_predict(Store(db), model, where=where, chunk_size=chunk_size or batch_size, device=device,
                      progress=not (no_progress or quiet), params=parse_params(params),
                      executor=executor, insecure=executor_insecure)
    console.print(f"{res.model}: {res.n_predicted:,} {res.property} predictions "
                  f"({res.n_null:,} not featurizable) in {res.seconds:.1f} s")


@click.command(epilog=example("matstore stability --model oqmd-attn-fe --reference oqmd --hull mixed",
                              "matstore stability --model oqmd-attn-fe --reference oqmd --executor processes:2"))
@store_option
@click.option("--model", "model", default=None,
              help="Formation-energy predictor NAME[@VERSION] or id (default: the known phases).")
@click.option("--reference", default=None,
              help="materials.source whose known phases make the hull (default: the only one "
                   "with formation energies).")
@click.option("--hull", type=click.Choice(["dft", "mixed", "model"]), default="dft", show_default=True,
              help="dft: the reference's DFT energies; mixed: plus known compositions without one at "
                   "--model's predicted energy (reference SOURCE+model); model: every reference phase "
                   "at --model's energy (SOURCE:model).")
@no_progress_option
@executor_options
def stability(db, model, reference, hull, no_progress, quiet, executor, executor_insecure):
    """Energy above the convex hull of a source's known phases, with decomposition products."""
    from ..stability import compute

    res = compute(Store(db), model=model, reference=reference, hull=hull,
                  progress=not (no_progress or quiet), executor=executor, insecure=executor_insecure)
    console.print(f"stability of {res.model or 'the known phases'} vs {res.reference} "
                  f"({res.n_phases:,} reference phases): {res.n_computed:,} rows, "
                  f"{res.n_below:,} below the known hull, in {res.seconds:.1f} s"
                  + (f" (run {res.run_id})" if res.run_id else ""))


@click.command(epilog=example('matstore featurize --featurizer magpie --where "n_elements >= $n" -p n=3'))
@store_option
@click.option("--featurizer", "featurizer", required=True,
              type=RegistryChoice(_featurizers), help="Featurizer to compute.")
@where_option
@param_option
@click.option("--batch-size", type=POSITIVE, default=100_000, show_default=True,
              help="Compositions per batch and transaction.")
@no_progress_option
def featurize(db, featurizer, where, params, batch_size, no_progress, quiet):
    """Compute a featurizer for compositions lacking its current version's rows."""
    from ..featurize import featurize_store
    from ..query import parse_params

    r = featurize_store(Store(db), featurizer, where=where, batch_size=batch_size,
                        progress=not (no_progress or quiet), params=parse_params(params))
    console.print(f"{featurizer} v{r.version}: {r.written:,} rows written for {r.pending:,} pending "
                  f"compositions ({r.not_encodable:,} not encodable, empty vector) in {r.seconds:.1f} s")


@click.command(epilog=example("matstore validate --oxidation-set icsd16"))
@store_option
@where_option
@param_option
@click.option("--batch-size", type=POSITIVE, default=100_000, show_default=True,
              help="Compositions per batch and transaction.")
@no_progress_option
@click.option("--oxidation-set", type=RegistryChoice(_oxidation_sets), default=None,
              help="smact oxidation-state set (default: matstore.validity.DEFAULT_SET, icsd24, "
                   "the one the views use).")
def validate(db, where, params, batch_size, no_progress, quiet, oxidation_set):
    """Charge neutrality / electronegativity / smact_validity and an oxidation-state assignment
    for compositions lacking them under one oxidation-state set."""
    from ..featurize import validate_store
    from ..query import parse_params

    r = validate_store(Store(db), where=where, batch_size=batch_size,
                       progress=not (no_progress or quiet), oxidation_set=oxidation_set or _default_set(),
                       params=parse_params(params))
    console.print(f"checker {r.version}: {r.written:,} rows written for {r.pending:,} pending "
                  f"compositions ({r.not_encodable:,} outside smact's data: NULL flags) in {r.seconds:.1f} s")


@click.command(epilog=example("matstore quality --db study.duckdb --run 3"))
@store_option
@click.option("--run", "run_id", type=int, default=None, help="Generation run (default: every one).")
@no_progress_option
@output_options
def quality(db, run_id, no_progress, quiet, fmt, parquet, limit_rows):
    """Measure generation quality (validity, uniqueness, novelty, recovery, distribution distances
    to the training set) into generation_quality and print the rows."""
    from ..quality import refresh

    say = None if (no_progress or quiet) else (lambda line: console.print(line, markup=False, highlight=False))
    output.emit(refresh(Store(db), run_id, notify=say), fmt, parquet, max_rows=limit_rows)


COMMANDS = [generate, quality, predict, stability, featurize, validate]
