"""The report's numbers: one query (or one model evaluation) per section, all for one run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..store import Store, frame
from .screens import ReportError

# the screens the report shows, best first: the first one with rows among the run's compositions
HIT_SCREENS = ("stable_semiconductors", "semiconductors", "stable_novel")
TOP_HITS = 20
PARITY_MAX_ROWS = 5000   # test splits are a few thousand rows; a larger one is subsampled (seeded)
UNITS = {"formation_energy_per_atom": "eV/atom", "band_gap": "eV", "energy_above_hull": "eV/atom"}


@dataclass
class Parity:
    """Predicted vs true on one predictor's registered test split."""
    model: str
    prop: str
    target_source: str
    y_true: np.ndarray
    y_pred: np.ndarray
    n_test: int          # the split's size (y_* may be a subsample)
    how: str             # "recomputed" or why it could not be


@dataclass
class ReportData:
    run_id: int
    model_id: int | None
    stats: dict
    models: pl.DataFrame
    sources: pl.DataFrame
    hits_screen: str | None
    hits: pl.DataFrame
    parity: list[Parity]
    candidates: pl.DataFrame        # pred FE / BG of the run's distinct compositions
    band_gaps: pl.DataFrame         # (source, kind, band_gap) per composition and source
    train_label: str
    n_elements: pl.DataFrame        # (set, n_elements, n)
    element_freq: pl.DataFrame      # (set, element, n, n_set)
    curve: pl.DataFrame             # uniqueness_curve rows of the run
    recovery: pl.DataFrame          # (set_name, role, set_size, samples_drawn, recovered) per batch
    recovery_final: pl.DataFrame    # novelty_recovery rows of the run
    quality: pl.DataFrame           # generation_quality rows (every measured run, this one first)


def _run_ids_sql() -> str:
    return "SELECT DISTINCT composition_id FROM generated WHERE run_id = ?"


def _hits(con, run_id: int) -> tuple[str | None, pl.DataFrame]:
    """Top hits of the first screen with rows among the run's compositions, with oxidation states
    and the model versions behind each prediction."""
    ids = frame(con, _run_ids_sql(), [run_id])
    for name in HIT_SCREENS:
        df = frame(con, f'SELECT * FROM "screen_{name}"').join(ids, on="composition_id", how="semi")
        if df.height:
            break
    else:
        return None, pl.DataFrame()
    df = df.head(TOP_HITS)
    extra = frame(con, """
        SELECT composition_id, ions, pred_formation_energy_model AS fe_model,
               pred_band_gap_model AS band_gap_model
        FROM candidates WHERE composition_id IN (SELECT unnest(?::BIGINT[]))""",
                  [df["composition_id"].to_list()])
    extra = extra.select(["composition_id"] + [c for c in extra.columns if c not in df.columns])
    df = df.join(extra, on="composition_id", how="left", maintain_order="left")
    keep = [c for c in ("formula", "ions", "rarest_ion", "rarest_ion_share", "e_above_hull",
                        "e_above_hull_bar", "coverage", "missing_systems",
                        "pred_formation_energy_per_atom", "pred_band_gap", "fe_model",
                        "band_gap_model", "reference", "times_generated", "generated_by")
            if c in df.columns]
    if "band_gap_model" in keep and df["band_gap_model"].null_count() == df.height:
        keep.remove("band_gap_model")
    return name, df.select(keep)


def _test_splits(con, predictors: pl.DataFrame) -> list[tuple[dict, object]]:
    """Each predictor's test split (composition_sets role 'test') with the target source's values
    it was trained on."""
    out = []
    for r in predictors.iter_rows(named=True):
        prop = r["property"]
        if prop not in UNITS:  # the property name comes from the file: only known columns go into SQL
            out.append((r, None))
            continue
        out.append((r, con.sql("""
            SELECT c.composition_id, c.elements, c.counts, cp.""" + prop + """ AS y
            FROM composition_sets s JOIN compositions c USING (composition_id)
            JOIN composition_properties_by_source cp USING (composition_id)
            WHERE s.model_id = ? AND s.role = 'test' AND cp.source = ? AND cp.""" + prop + """ IS NOT NULL
            ORDER BY c.composition_id""", params=[r["model_id"], r["target_source"]]).to_arrow_table()))
    return out


def _parity(store: Store, splits: list[tuple[dict, object]]) -> list[Parity]:
    """Recompute each predictor (registry.load_model) on its test split."""
    from ..featurize import batch_from_arrow  # noqa: PLC0415
    from ..registry import load_model  # noqa: PLC0415

    out = []
    for r, tab in splits:
        ref, prop, source = r["ref"], r["property"], r["target_source"]
        if tab is None:
            out.append(Parity(ref, str(prop), source, np.zeros(0), np.zeros(0), 0,
                              f"unknown property {prop!r}"))
            continue
        n = tab.num_rows
        if n == 0:
            out.append(Parity(ref, prop, source, np.zeros(0), np.zeros(0), 0,
                              "no test split with target values stored"))
            continue
        if n > PARITY_MAX_ROWS:
            idx = np.sort(np.random.default_rng(0).choice(n, PARITY_MAX_ROWS, replace=False))
            tab = tab.take(idx)
        try:
            model = load_model(store, int(r["model_id"]), device="cpu")
            pred = np.asarray(model.predict(batch_from_arrow(tab), device="cpu"), np.float64)
            how = "recomputed"
        except Exception as e:  # noqa: BLE001 (an unloadable model: say so in its panel)
            pred, how = np.full(tab.num_rows, np.nan), f"not recomputed: {str(e).splitlines()[0]}"
        out.append(Parity(ref, prop, source, tab.column("y").to_numpy().astype(np.float64), pred, n, how))
    return out


def _sets(con, run_id: int, model_id: int | None) -> tuple[str, str, list]:
    """SQL of the generated and the training compositions; training = the generator's own
    'train' split, else `known`."""
    has_train = model_id is not None and con.execute(
        "SELECT count(*) FROM composition_sets WHERE model_id = ? AND role = 'train'",
        [model_id]).fetchall()[0][0] > 0
    if has_train:
        return ("training set", "SELECT DISTINCT composition_id FROM composition_sets "
                                "WHERE model_id = ? AND role = 'train'", [model_id])
    return "known compositions", "SELECT composition_id FROM known", []


def report_data(store: Store, run_id: int) -> ReportData:
    from .. import models as model_kinds  # noqa: PLC0415 (imports torch)

    with store.connect(guarded=True) as con:
        stats = frame(con, "SELECT * FROM generation_stats WHERE run_id = ?", [run_id])
        if stats.height == 0:
            raise ReportError(f"run {run_id} is not a generation run in {store.path}")
        model_id = con.execute("SELECT model_id FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
        models = frame(con, """
            SELECT model_id, r.ref, kind,
                   json_extract_string(hyperparams, '$.property') AS property,
                   json_extract_string(hyperparams, '$.featurizer') AS featurizer,
                   json_extract_string(hyperparams, '$.target_source') AS target_source,
                   training_rows, json_extract(metrics, '$.test.mae')::DOUBLE AS test_mae,
                   json_extract(metrics, '$.test.r2')::DOUBLE AS test_r2,
                   created_at
            FROM model_versions JOIN model_refs r USING (model_id)
            WHERE model_id = ? OR model_id IN (SELECT DISTINCT model_id FROM predictions
                  WHERE composition_id IN (SELECT composition_id FROM generated WHERE run_id = ?))
            ORDER BY model_id""", [model_id, run_id])
        sources = frame(con, """
            SELECT source, kind, method,
                   count(*) AS compositions,
                   count(formation_energy_per_atom) AS with_formation_energy,
                   count(band_gap) AS with_band_gap
            FROM composition_properties_by_source GROUP BY ALL ORDER BY source""")
        hits_screen, hits = _hits(con, run_id)
        predictors = models.filter(pl.col("kind").is_in(sorted(model_kinds.PREDICTOR_KINDS)) & pl.col("property").is_not_null()
                                   & pl.col("target_source").is_not_null())
        splits = _test_splits(con, predictors)
        cand = frame(con, """SELECT pred_formation_energy_per_atom, pred_band_gap, novel, valid
                             FROM candidates WHERE composition_id IN (""" + _run_ids_sql() + ")", [run_id])
        band_gaps = frame(con, """SELECT source, kind, band_gap FROM composition_properties_by_source
                                  WHERE band_gap IS NOT NULL""")
        label, train_sql, train_params = _sets(con, run_id, model_id)
        both = (f"SELECT 'generated' AS set, composition_id FROM ({_run_ids_sql()}) "
                f"UNION ALL SELECT 'training' AS set, composition_id FROM ({train_sql})")
        params = [run_id, *train_params]
        n_el = frame(con, f"""SELECT s.set, c.n_elements, count(*) AS n FROM ({both}) s
                              JOIN compositions c USING (composition_id) GROUP BY ALL ORDER BY ALL""", params)
        # elements are counted in polars: DuckDB 2.0.0 raises an INTERNAL error ("dict-surviving
        # cache") on unnest(elements) joined with the set sizes, intermittently, with threads > 1
        members = frame(con, f"""SELECT s.set, c.elements FROM ({both}) s
                                 JOIN compositions c USING (composition_id)""", params)
        freq = (members.with_columns(pl.len().over("set").alias("n_set")).explode("elements")
                .group_by("set", pl.col("elements").alias("element"))
                .agg(pl.len().alias("n"), pl.first("n_set")).sort("set", "element"))
        curve = frame(con, "SELECT * FROM uniqueness_curve WHERE run_id = ? ORDER BY batch_no", [run_id])
        recovery = frame(con, """
            WITH fs AS (SELECT composition_id, min(batch_no) AS batch_no FROM generated
                        WHERE run_id = ? GROUP BY composition_id),
                 sets AS (SELECT DISTINCT set_name, role, composition_id FROM composition_sets
                          WHERE model_id = ? OR model_id IS NULL),
                 sizes AS (SELECT set_name, any_value(role) AS role, count(*) AS set_size
                           FROM sets GROUP BY set_name),
                 hits AS (SELECT s.set_name, fs.batch_no, count(*) AS n FROM sets s
                          JOIN fs USING (composition_id) GROUP BY ALL),
                 b AS (SELECT batch_no, (sum(n_samples) OVER (ORDER BY batch_no))::BIGINT AS samples_drawn
                       FROM run_batches WHERE run_id = ?)
            SELECT z.set_name, z.role, z.set_size, b.batch_no, b.samples_drawn,
                   (sum(coalesce(h.n, 0)) OVER (PARTITION BY z.set_name ORDER BY b.batch_no))::BIGINT AS recovered
            FROM sizes z CROSS JOIN b LEFT JOIN hits h ON h.set_name = z.set_name AND h.batch_no = b.batch_no
            ORDER BY z.set_name, b.batch_no""", [run_id, model_id, run_id])
        final = frame(con, "SELECT * FROM novelty_recovery WHERE run_id = ?", [run_id])
        quality = frame(con, """SELECT q.*, r.ref AS model FROM generation_quality q
                                LEFT JOIN model_refs r USING (model_id)
                                ORDER BY q.run_id <> ?, q.run_id""", [run_id])
    parity = _parity(store, splits)   # load_model opens its own connection
    return ReportData(run_id, model_id, stats.row(0, named=True), models, sources, hits_screen, hits,
                      parity, cand, band_gaps, label, n_el, freq, curve, recovery, final, quality)
