"""`matstore demo`: the whole study on the offline builtin data, end to end, in minutes on a CPU.

ingest builtin -> a generator: the shipped pretrained composition transformer (PRETRAINED, trained
on the MatGAN-curated MP compositions; imported, no training), or a small GAN trained on the
builtin Materials Project compositions when the store already has one or gan_epochs asks for
it -> train a formation-energy predictor on the builtin experimental formation enthalpies -> generate ->
validate -> predict -> energy above the hull -> screen. The builtin data has no band gaps, so the
demo's screen is `screen_hull_novel` (novel, charge-neutral and electronegativity-balanced,
predicted within 0.1 eV/atom of the convex hull of the builtin experimental formation enthalpies,
most stable first) rather than the thesis' semiconductor window.

Each step is skipped when its result is already in the store (the ingest dedupes, trained demo
models are reused, predictions/validity are only computed where missing), so re-running the demo
on the same file only adds a new generation run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console

from .store import Store

GAN_NAME = "demo-gan"
HULL_REFERENCE = "builtin"   # the source holding the experimental formation enthalpies
FE_NAME = "demo-fe"
# The MP part of the builtin source (matminer's transport database, external ids mp-...).
MP_SELECTION = ("SELECT DISTINCT composition_id FROM materials "
                "WHERE source = 'builtin' AND external_id LIKE 'mp-%'")
# The builtin experimental formation enthalpies (named as the target source: not DFT).
EXP_FE_SELECTION = ("SELECT p.composition_id FROM composition_properties_by_source p WHERE "
                    "p.source = 'builtin' AND p.formation_energy_per_atom IS NOT NULL")
# The GAN: preset gan-mp-small (matstore.training.presets: its config, rates and measurements).
GAN_PRESET = "gan-mp-small"
# The shipped generator the demo uses when it trains none (matstore/pretrained).
PRETRAINED = "transformer-mp"


@dataclass
class DemoResult:
    run_id: int
    gan: str
    predictor: str
    n_candidates: int
    n_screened: int
    seconds: dict
    tv_top: float | None = None         # TV distance: element-count histogram of the screened
    tv_candidates: float | None = None  # candidates / of all the run's candidates vs the known


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _existing(store: Store, name: str) -> str | None:
    df = store.query("SELECT max(version) AS v FROM model_versions WHERE name = ?", [name])
    return f"{name}@{df['v'][0]}" if df["v"][0] is not None else None


def run_demo(store: Store, samples: int = 20000, gan_epochs: int | None = None,
             seed: int = 0, device: str | None = None, top: int = 20,
             console: Console | None = None, progress: bool = True, batch_size: int = 4096,
             gan_rows: int | None = 4000) -> DemoResult:
    import polars as pl  # noqa: PLC0415

    from . import output, pretrained, runner, stability, training  # noqa: PLC0415
    from .featurize import validate_store  # noqa: PLC0415
    from .ingest import run as ingest_run  # noqa: PLC0415
    from .predict import predict  # noqa: PLC0415
    from .report import run_screen  # noqa: PLC0415

    console = console or Console(stderr=True)
    device = runner.resolve_device(device)
    secs: dict[str, float] = {}

    def step(name):
        console.print(f"[bold cyan]== {name}[/bold cyan]")
        return time.perf_counter()

    t = step("ingest builtin (pymatgen experimental formation enthalpies + matminer MP list)")
    store = Store.init(store.path)
    r = ingest_run(store, "builtin", progress=progress)
    console.print(f"ingest {r.ingest_id}: {r.rows_kept:,} new materials, {r.rows_duplicate:,} already stored")
    secs["ingest"] = time.perf_counter() - t

    gan = _existing(store, GAN_NAME)
    if gan is None and gan_epochs is None and PRETRAINED in pretrained.names():
        t = step(f"generator: the shipped pretrained {PRETRAINED} (no training)")
        pretrained.ensure(store, PRETRAINED)
        gan = _existing(store, PRETRAINED)
        e = pretrained.entry(PRETRAINED)
        console.print(f"{gan}: {e.get('model')} trained by {e.get('script')} on "
                      f"{', '.join(e.get('data', {}))} ({e.get('curation', '')})")
        secs["generator"] = time.perf_counter() - t
    else:
        t = step(f"train GAN {GAN_NAME} on the builtin MP compositions"
                 + (f" (a seeded {gan_rows:,} of them)" if gan_rows else ""))
    if gan is None or gan_epochs is not None:
        mv = training.train(store, GAN_PRESET, on=MP_SELECTION, name=GAN_NAME, device=device,
                            seed=seed, epochs=gan_epochs or None, progress=progress,
                            max_rows=gan_rows, fractions=(0.9, 0.05, 0.05))
        gan = mv.ref
        m = mv.metrics.get("sample", {})
        console.print(f"{gan}: {mv.metrics.get('train_seconds', 0):.0f} s; of {m.get('n_samples', 0):,} "
                      f"samples {m.get('decodable_pct', 0):.1f}% decodable, {m.get('uniqueness_pct', 0):.1f}% "
                      f"unique, {m.get('validity_pct', 0):.1f}% valid, {m.get('novelty_pct', 0):.1f}% novel")
        secs["train_gan"] = time.perf_counter() - t
    elif "generator" not in secs:
        console.print(f"reusing {gan}")
        secs["train_gan"] = time.perf_counter() - t

    t = step(f"train formation-energy predictor {FE_NAME} (random forest on Magpie)")
    fe = _existing(store, FE_NAME)
    if fe is None:
        mv = training.train(store, "rf-fe", on=EXP_FE_SELECTION, target_source="builtin", name=FE_NAME,
                            seed=seed, config={"n_jobs": 2}, progress=progress)
        fe = mv.ref
        m = mv.metrics.get("test", {})
        console.print(f"{fe}: test MAE {m.get('mae', float('nan')):.3f} eV/atom, "
                      f"R² {m.get('r2', float('nan')):.3f} ({m.get('n', 0)} compositions)")
    else:
        console.print(f"reusing {fe}")
    secs["train_fe"] = time.perf_counter() - t

    t = step(f"generate {samples:,} samples from {gan} (seed {seed}, {device})")
    run = runner.generate(store, gan, samples, batch_size=batch_size, seed=seed, device=device,
                          progress=progress)
    secs["generate"] = time.perf_counter() - t

    where = f"composition_id IN (SELECT composition_id FROM generated WHERE run_id = {run.run_id})"
    t = step("validate the generated compositions (charge neutrality, electronegativity)")
    validate_store(store, where=where, progress=progress)
    secs["validate"] = time.perf_counter() - t

    t = step(f"predict formation energy of the generated compositions with {fe}")
    predict(store, fe, where=where, device=device, progress=progress)
    secs["predict"] = time.perf_counter() - t

    t = step(f"energy above the convex hull of the {HULL_REFERENCE} formation enthalpies ({fe})")
    hull = stability.compute(store, model=fe, reference=HULL_REFERENCE, progress=progress)
    console.print(f"{hull.n_computed:,} candidates placed against the hulls of {hull.n_phases:,} "
                  f"known phases; {hull.n_below:,} below the known hull")
    secs["stability"] = time.perf_counter() - t

    t = step("screen: hull_novel (novel, valid, predicted <= 0.1 eV/atom above the known hull)")
    stats = store.query("SELECT run_id, model, n_samples, decodable_pct, n_unique, unique_pct, "
                        "novel_pct, valid_pct FROM generation_stats WHERE run_id = ?", [run.run_id])
    st = stats.row(0, named=True)
    console.print(f"run {st['run_id']} ({st['model']}): {st['n_samples']:,} samples, "
                  f"{_pct(st['decodable_pct'])} decodable, {st['n_unique']:,} unique "
                  f"({_pct(st['unique_pct'])} of decodable), {_pct(st['novel_pct'])} novel, "
                  f"{_pct(st['valid_pct'])} valid  (view generation_stats)")
    screened = run_screen(store, "hull_novel").filter(
        (pl.col("fe_model") == fe) & (pl.col("reference") == HULL_REFERENCE))
    n_cand = store.query("SELECT count(*) AS n FROM candidates")["n"][0]
    shown = screened.select("formula", pl.col("n_elements").alias("elements"),
                            pl.col("pred_formation_energy_per_atom").round(3).alias("pred_Ef_eV_per_atom"),
                            pl.col("e_above_hull").round(3).alias("pred_E_hull_eV_per_atom"),
                            pl.col("decomposition").list.eval(pl.format(
                                "{} {}", pl.element().struct.field("fraction").round(2),
                                pl.element().struct.field("formula"))).list.join(" + ").alias("decomposes_to"),
                            "rarest_ion", pl.col("times_generated").alias("times_generated"))
    output.print_table(shown,
                       title=f"top candidates (screen_hull_novel, {fe} vs the {HULL_REFERENCE} hull: "
                             f"{screened.height:,} of {n_cand:,} candidates)", max_rows=top)
    tv_top, tv_all = element_count_tv(store, screened["composition_id"].to_list()), element_count_tv(
        store, store.query("SELECT DISTINCT composition_id FROM generated WHERE run_id = ?",
                           [run.run_id])["composition_id"].to_list())
    console.print(f"elements per composition vs the known compositions: total variation "
                  f"{_tv(tv_top)} for the {screened.height:,} screened candidates, {_tv(tv_all)} for "
                  f"all {run.n_decodable:,} decodable samples' distinct compositions")
    secs["screen"] = time.perf_counter() - t
    console.print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items()))
    console.print(f"explore further: matstore query --db {store.path} \"SELECT * FROM candidates\"; "
                  f"matstore report --db {store.path} --out report/")
    return DemoResult(run.run_id, gan, fe, n_cand, screened.height, secs, tv_top, tv_all)


def _tv(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def element_count_tv(store: Store, ids: list[int]) -> float | None:
    """Total variation distance between the elements-per-composition histogram of ids and that
    of the known compositions (quality.tv_distance)."""
    from .quality import tv_distance  # noqa: PLC0415

    if not ids:
        return None
    sql = "SELECT n_elements AS k, count(*) AS n FROM compositions WHERE composition_id IN ({}) GROUP BY 1"
    mine = store.query(sql.format("SELECT unnest(?::BIGINT[])"), [list(ids)])
    known = store.query(sql.format("SELECT composition_id FROM known"))
    return tv_distance(dict(mine.iter_rows()), dict(known.iter_rows()))
