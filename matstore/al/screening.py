"""The end of a campaign: ``finish`` trains a screening predictor on the base + the campaign's
labels and screens a pool; ``screen`` / ``screen_campaign`` screen a pool with a model (what the
campaign labelled is decided by its label). Pools are SQL selections checked here (check_pool).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..selection import check_query as check_selection, registered, selection_ids
from ..store import Store, frame
from . import acquisition as acq
from . import campaigns
from .campaigns import Campaign
from .errors import ALError


@dataclass
class FinishResult:
    campaign_id: int
    model: str                    # the screening model version (base + campaign labels)
    model_id: int
    training_rows: int
    n_pool: int = 0
    n_candidates: int = 0
    candidates: pl.DataFrame | None = None


def finish(store: Store, campaign_id: int, *, preset: str = "rf-bg", name: str | None = None,
           pool: str | None = None, threshold: float | None = None, progress: bool = False,
           **train_kwargs) -> FinishResult:
    """Train a screening predictor on base + the campaign's labels (target sources: the label
    sources first, then the base source; the version's training query and hyperparams name both)
    and, given a pool (SQL returning composition_id), screen it (screen_campaign: what the
    campaign labelled is decided by its label)."""
    from ..training import train  # noqa: PLC0415

    c = campaigns.get(store, campaign_id)
    if threshold is None and c.target.goal == "max":
        threshold = c.params.get("threshold")    # the level the campaign tracked, if any
    if pool is not None:   # checked before training: a refused pool leaves no model behind
        sel = check_pool(store, check_screen_args(pool, c.target, threshold), pool)
    with store.connect() as con:
        sources = [r[0] for r in con.execute(
            "SELECT source FROM al_labels WHERE campaign_id = ? GROUP BY source ORDER BY min(proposal_id)",
            [c.campaign_id]).fetchall()]
    base_set = c.base_set.replace("'", "''")   # a value of the store's: quoted, a literal
    on = (f"SELECT composition_id FROM composition_sets WHERE set_name = '{base_set}' "
          f"UNION SELECT composition_id FROM al_labels WHERE campaign_id = {int(c.campaign_id)}")
    mv = train(store, preset, on=on, target_source=[*sources, c.base_source] if sources else c.base_source,
               name=name or f"{preset}-al{c.campaign_id}", seed=int(c.seed), progress=progress, **train_kwargs)
    with store.connect() as con:
        n_rows = con.execute("SELECT training_rows FROM model_versions WHERE model_id = ?",
                             [mv.model_id]).fetchall()[0][0]
    res = FinishResult(c.campaign_id, mv.ref, mv.model_id, n_rows)
    if pool is not None:
        res.n_pool, res.candidates = screen_labelled(store, c, mv.ref, sel, threshold, progress)
        res.n_candidates = res.candidates.height
    return res


def check_screen_args(pool: str, target, threshold: float | None) -> str:
    """The pool as one checked SELECT, after the threshold is checked (finish calls this before it
    trains anything: a bad --pool or --threshold leaves no model behind)."""
    import math  # noqa: PLC0415

    t = acq.Target.parse(target)
    if t.goal == "max" and threshold is None:
        raise ALError("screening for 'max' needs a threshold (candidates: predicted >= threshold)")
    if threshold is not None and not math.isfinite(float(threshold)):
        raise ALError(f"--threshold {threshold}: expected a finite number")
    return check_selection(pool, "--pool")


def check_pool(store: Store, sel: str, pool: str, option: str = "--pool") -> str:
    """Run the checked selection once (guarded, read-only) so that a failing one is reported as
    the option the user typed (`--pool`, not the `predict --where` it becomes)."""
    selection_ids(store, sel, option)   # guarded, read-only; errors name the option
    return sel


def pool_predictions(store: Store, model: str, sel: str, progress: bool) -> pl.DataFrame:
    """Predict the pool (sel: a checked selection returning composition_id, see check_pool) with
    `model`: (composition_id, formula, value) of every pool composition it could predict, best first."""
    from ..predict import predict  # noqa: PLC0415
    from ..registry import resolve  # noqa: PLC0415

    predict(store, model, where=f"c.composition_id IN (SELECT composition_id FROM ({sel}))",
            progress=progress)
    m = resolve(store, model)
    ids = selection_ids(store, sel, "--pool")
    with store.connect() as con, registered(con, ids) as table:
        return frame(con, f"SELECT p.composition_id, c.formula, p.value FROM predictions p "
                          f"JOIN compositions c USING (composition_id) "
                          f"SEMI JOIN {table} s ON s.composition_id = p.composition_id "
                          f"WHERE p.model_id = ? AND p.value IS NOT NULL "
                          f"ORDER BY p.value DESC", [m.model_id])


def meets(values, target, threshold) -> np.ndarray:
    t = acq.Target.parse(target)
    values = np.asarray(values, np.float64)
    return values >= threshold if t.goal == "max" else t.hit(values)


def screen(store: Store, model: str, pool: str, target, threshold: float | None = None,
           progress: bool = False) -> tuple[int, pl.DataFrame]:
    """Predict the pool (SQL returning composition_id) with `model` and keep what meets the
    target: in [a, b] for a range, >= threshold for max. Returns (pool size, candidates)."""
    sel = check_pool(store, check_screen_args(pool, target, threshold), pool)
    df = pool_predictions(store, model, sel, progress)
    return df.height, df.filter(pl.Series(meets(df["value"], target, threshold)))


def screen_campaign(store: Store, campaign_id: int, model: str, pool: str, threshold: float | None = None,
                    progress: bool = False) -> tuple[int, pl.DataFrame]:
    """Screen the pool for a campaign's target: a pool composition the campaign labelled is
    decided by its label (a DFT or lab value outranks a prediction), the others by `model`'s
    prediction. Returns (pool size, candidates best first); columns: composition_id, formula,
    value (the prediction), label, label_source (NULL when unlabelled) and screened_by
    ('label' or 'prediction')."""
    c = campaigns.get(store, campaign_id)
    return screen_labelled(store, c, model, check_pool(store, check_screen_args(pool, c.target, threshold), pool),
                            threshold, progress)


def screen_labelled(store: Store, c: Campaign, model: str, sel: str, threshold, progress: bool):
    """screen_campaign for a loaded campaign and a checked pool selection."""
    df = pool_predictions(store, model, sel, progress)
    with store.connect() as con:
        lab = frame(con, "SELECT composition_id, value AS label, source AS label_source FROM al_labels "
                         "WHERE campaign_id = ? AND value IS NOT NULL ORDER BY proposal_id", [c.campaign_id])
    df = df.join(lab.unique("composition_id", keep="first"), on="composition_id", how="left").with_columns(
        pl.when(pl.col("label").is_null()).then(pl.lit("prediction")).otherwise(pl.lit("label")).alias("screened_by"))
    decided = df.select(pl.coalesce("label", "value")).to_series()
    keep = pl.Series(meets(decided, c.target, threshold))
    out = df.with_columns(decided.alias("_decided")).filter(keep).sort("_decided", descending=True).drop("_decided")
    return df.height, out
