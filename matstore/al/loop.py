"""The active-learning loop: start a campaign, step it round by round, finish it.

A step brings the campaign one round further, resumably:
1. an open round (proposed, labels awaited) is finished first: a model oracle labels what is
   missing and the step ends there (a step killed after its proposals were committed is
   completed, not repeated); an external oracle's round must hold its labels (`al label`), or
   be closed with allow_missing;
2. otherwise the GP is fit on the base set plus every label of the campaign, a batch is chosen
   in the latent box and decoded, and the round with all its proposals is written in ONE
   transaction before anything is labelled;
3. a model oracle then labels the round (its own transaction; idempotent) and closes it.
Killed anywhere, the store holds either no round or a whole round; labels are written once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from .. import compositions
from ..query import check_selection, friendly
from ..store import Store, append, frame, next_id
from . import acquisition as acq
from . import campaigns, labels, latents, oracles, surrogate
from .campaigns import Campaign
from .errors import ALError

DEFAULTS = {"n_candidates": 3000, "local_fraction": 0.5, "step": 0.1}


@dataclass
class StepResult:
    campaign_id: int
    round_no: int
    resumed: bool = False            # finished a round proposed by an earlier (killed) step
    proposed: int = 0
    decodable: int = 0
    labelled: int = 0
    n_train: int = 0
    seconds: float = 0.0
    gp: dict = field(default_factory=dict)


def _load_ae(store: Store, ref):
    from ..registry import load_model  # noqa: PLC0415

    ae = load_model(store, ref, device="cpu")
    latents.check_autoencoder(ae)
    return ae


def start(store: Store, autoencoder, oracle: str, *, property: str = "band_gap", target="max",
          acquisition: str = "ucb", kappa: float = acq.DEFAULT_KAPPA, batch_size: int = 100,
          base_selection: str = "SELECT composition_id FROM known", base_source: str | None = None,
          base_rows: int | None = None, seed: int = 0, name: str | None = None,
          n_candidates: int = DEFAULTS["n_candidates"], local_fraction: float = DEFAULTS["local_fraction"],
          step: float = DEFAULTS["step"], threshold: float | None = None,
          near_levels: float | None = None, candidates_from: str | None = None) -> int:
    """Record a campaign; its base set is the selection's compositions with a `property` value
    from `base_source` (default: the store's one DFT source), a seeded random base_rows of them.
    threshold: the level "property >= threshold" a level-set acquisition (straddle) tracks for
    target max (a range target's edges are its levels). near_levels (level-set acquisitions): the
    local candidates start only from this fraction of the labelled points, those nearest a level.
    candidates_from (SQL returning composition_id, e.g. a generated pool): a pool-based campaign
    whose candidates are those compositions' latents instead of points of the latent box."""
    from ..training import data  # noqa: PLC0415

    t = acq.Target.parse(target)
    levels = acq.tracked_levels(acquisition, t, threshold)
    campaigns.check_settings(acquisition, kappa, batch_size, {
        "n_candidates": n_candidates, "local_fraction": local_fraction, "step": step,
        "near_levels": near_levels}, "al start")
    if near_levels is not None and not levels:
        raise ALError(f"--near-levels is for the level-set acquisitions ({', '.join(acq.LEVEL_SET)}), "
                      f"not {acquisition!r}")
    if candidates_from is not None:
        if near_levels is not None:
            raise ALError("--near-levels shapes latent-box candidates; --candidates-from has none")
        candidates_from = check_pool(store, check_selection(candidates_from, "al start --candidates-from"),
                                     candidates_from, "al start --candidates-from")
    ae = _load_ae(store, autoencoder)
    kind, ref = oracles.parse(oracle)
    oracle_model = oracles.load_predictor(store, ref, property) if kind.automatic else None
    source = data.target_source(store, property, base_source)
    check_selection(base_selection, "al start --base")
    try:
        ds = data.load(store, base_selection, property, max_rows=base_rows, seed=seed, source=source.source)
    except data.SelectionError as e:   # data.load speaks of `train --on`: name the option typed here
        raise ALError(f"al start --base {base_selection.strip()!r}: "
                      f"{str(e).replace('training selection', 'the selection', 1)}") from None
    params = {"n_candidates": int(n_candidates), "local_fraction": float(local_fraction),
              "step": float(step), "decode_tolerance": latents.DECODE_TOLERANCE,
              "base_source_kind": source.kind, "base_source_method": source.method,
              "autoencoder": ae.ref, "oracle_model": oracle_model.ref if oracle_model else None}
    if threshold is not None:
        params["threshold"] = levels[0]
    if near_levels is not None:
        params["near_levels"] = float(near_levels)
    if candidates_from is not None:
        params["candidates_from"] = candidates_from
    with store.transaction() as con:
        return campaigns.insert(
            con, name=name, property=property, target=t, acquisition=acquisition, kappa=kappa,
            batch_size=batch_size, oracle=f"model:{oracle_model.ref}" if oracle_model else kind.name,
            oracle_model_id=oracle_model.model_id if oracle_model else None,
            autoencoder_id=ae.model_id, base_selection=base_selection.strip(),
            base_source=source.source, base_ids=ds.batch.composition_id, params=params, seed=seed)


def training_set(store: Store, campaign: Campaign, ae=None) -> pl.DataFrame:
    """What the GP learns from: (composition_id, value, source, vector) of the base set (the base
    source's values) and of every label of the campaign, where the autoencoder can encode the
    composition (8x85 map), ordered by composition_id."""
    prop = campaign.property
    if prop not in ("band_gap", "formation_energy_per_atom", "energy_above_hull"):
        raise ALError(f"campaign property {prop!r} is not a property column")
    with store.connect() as con:
        base = frame(con, f"SELECT s.composition_id, cp.{prop} AS value, cp.source "
                          f"FROM composition_sets s JOIN composition_properties_by_source cp "
                          f"USING (composition_id) WHERE s.set_name = ? AND cp.source = ? "
                          f"AND cp.{prop} IS NOT NULL",
                     [campaign.base_set, campaign.base_source])
        labs = labels.training_labels(con, campaign.campaign_id)
    df = pl.concat([base, labs], how="vertical_relaxed").unique(subset="composition_id", keep="last")
    ae = ae or _load_ae(store, campaign.autoencoder_id)
    lat = latents.ensure(store, ae, df["composition_id"].to_numpy())
    return df.join(lat, on="composition_id", how="inner").sort("composition_id")


def training_hash(df: pl.DataFrame) -> str:
    h = hashlib.sha256(np.ascontiguousarray(df["composition_id"].to_numpy(), np.int64).tobytes())
    h.update(np.ascontiguousarray(df["value"].to_numpy(), np.float64).tobytes())
    h.update("\x1f".join(df["source"].to_list()).encode())
    return h.hexdigest()


def fit_surrogate(store: Store, campaign: Campaign, ae=None, seed: int = 0):
    """(surrogate, training frame, latent matrix) for the campaign as stored now. The GP models
    the target's objective, or the property itself for a level-set acquisition."""
    train = training_set(store, campaign, ae)
    x = latents.matrix(train)
    y = train["value"].to_numpy()
    if not campaign.models_property:
        y = campaign.target.objective(y)
    return surrogate.fit(x, y, seed=seed), train, x


def step(store: Store, campaign_id: int, *, allow_missing: bool = False, ae=None,
         oracle_model=None, notify=None) -> StepResult:
    """One round further (see the module's docstring). notify(line): told what the step is
    doing before each long part (the surrogate fit, the candidates, the oracle)."""
    say = notify or (lambda _line: None)
    t0 = time.perf_counter()
    c = campaigns.get(store, campaign_id)
    kind, _ = oracles.parse(c.oracle)
    with store.connect() as con:
        r_open = campaigns.open_round(con, c.campaign_id)
    if r_open is not None:
        if kind.automatic:
            res = StepResult(c.campaign_id, r_open, resumed=True)
            res.labelled = label_round(store, c, r_open, oracle_model)
            res.seconds = time.perf_counter() - t0
            return res
        with store.transaction() as con:
            missing = campaigns.unlabelled(con, c.campaign_id, r_open).height
            if missing and not allow_missing:
                raise ALError(f"round {r_open} of campaign {c.campaign_id} awaits {missing} label(s): "
                              f"`matstore al export` its proposals and `matstore al label` the values "
                              f"(or step with --allow-missing to go on without them)")
            campaigns.close_round(con, c.campaign_id, r_open)
    res = propose(store, c, ae, notify=say)
    if kind.automatic:
        say(f"round {res.round_no}: the {c.oracle} oracle labels {res.decodable} proposal(s)")
        res.labelled = label_round(store, c, res.round_no, oracle_model)
    res.seconds = time.perf_counter() - t0
    return res


def label_round(store: Store, c: Campaign, round_no: int, oracle_model=None) -> int:
    """A model oracle labels the round's missing labels, then the round is closed."""
    with store.connect() as con:
        todo = campaigns.unlabelled(con, c.campaign_id, round_no)
    n = oracles.label_round(store, c, todo, oracle_model)
    with store.transaction() as con:   # proposals the oracle cannot featurize stay unlabelled
        campaigns.close_round(con, c.campaign_id, round_no)
    return n


def propose(store: Store, c: Campaign, ae=None, notify=None) -> StepResult:
    """Fit, choose and decode one batch; write the round and its proposals in one transaction."""
    t0 = time.perf_counter()
    say = notify or (lambda _line: None)
    ae = ae or _load_ae(store, c.autoencoder_id)
    with store.connect() as con:
        round_no = campaigns.last_round(con, c.campaign_id) + 1
        proposed = {r[0] for r in con.execute(
            "SELECT composition_id FROM al_proposals WHERE campaign_id = ? AND composition_id IS NOT NULL",
            [c.campaign_id]).fetchall()}
        # known = in the data (not the labels of this or another campaign: those stay proposable
        # by other campaigns, whose GP has not seen them)
        known = {r[0] for r in con.execute(
            "SELECT DISTINCT m.composition_id FROM materials m JOIN ingests i USING (ingest_id) "
            f"WHERE i.uri NOT LIKE '{labels.LABEL_URI.split('{')[0]}%'").fetchall()}
    seed = int(c.seed) * 100_003 + round_no
    rng = np.random.default_rng(seed)
    p = {**DEFAULTS, **c.params}
    if c.acquisition == "random":      # the baseline: no GP, uniform picks from the same candidates
        train = training_set(store, c, ae)
        x = latents.matrix(train)
        gp, box = None, surrogate.Box.of(x)
    else:
        say(f"round {round_no}: fitting the {c.acquisition} surrogate on the labelled compositions")
        gp, train, x = fit_surrogate(store, c, ae, seed=seed)
        say(f"round {round_no}: surrogate fitted on {len(x):,}; scoring {int(p['n_candidates']):,} candidates")
        box = gp.box
    exclude = known | proposed
    if p.get("candidates_from"):      # pool-based: the latents of given compositions, not decodes
        z, el, counts = pool_candidates(store, ae, p["candidates_from"], exclude, int(p["n_candidates"]), rng)
        ok = np.ones(len(z), bool)
    else:
        starts = None
        if p.get("near_levels") is not None:
            starts = acq.nearest_to_levels(train["value"].to_numpy(), c.levels, float(p["near_levels"]))
        u = acq.candidates(box.to_unit(x), int(p["n_candidates"]), rng, float(p["local_fraction"]),
                           float(p["step"]), seed=seed, starts=starts)
        z = box.from_unit(u)
        el, counts, ok = latents.decode(ae, z)
    keys = np.where(ok, compositions.keys_from_arrays(el, counts), 0)
    if gp is None:
        allowed = np.array([k == 0 or int(k) not in exclude for k in keys])
        order = rng.permutation(np.flatnonzero(allowed))
        picks, seen = [], set()
        for i in order:            # one proposal per composition, as the GP path does
            if keys[i] == 0 or int(keys[i]) not in seen:
                picks.append(i)
                seen.add(int(keys[i]))
            if len(picks) == c.batch_size:
                break
        picks = np.asarray(picks, np.int64)
        values = np.full(len(picks), np.nan)
        mean = std = np.full(len(z), np.nan)
        hyper = {}
    else:
        mean, cov = gp.posterior(z, full_cov=True)
        hyper = gp.hyperparameters()
        noise = hyper["noise"] * gp.y_std ** 2
        best = float(np.max(c.target.objective(train["value"].to_numpy())))
        picks, values = acq.select(mean, cov, keys, c.batch_size, acquisition=c.acquisition,
                                   kappa=c.kappa, best=best, noise=noise, exclude=exclude, rng=rng,
                                   levels=c.levels)
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    dec = ok[picks]
    rows = compositions.composition_rows(el[picks][dec], counts[picks][dec])
    res = StepResult(c.campaign_id, round_no, proposed=len(picks), n_train=len(train), gp=hyper)
    with store.transaction() as con:
        if campaigns.open_round(con, c.campaign_id) is not None or \
                campaigns.last_round(con, c.campaign_id) != round_no - 1:
            raise ALError(f"campaign {c.campaign_id} changed while round {round_no} was chosen "
                          f"(another step ran); nothing was written")
        _, taken_by = compositions.insert_new(con, rows)
        comp = np.zeros(len(picks), np.int64)
        comp[dec] = np.where(taken_by.is_null().to_numpy(), rows.column("composition_id").to_numpy(), 0)
        formula = np.full(len(picks), None, object)
        formula[dec] = rows.column("formula").to_pylist()
        formula[comp == 0] = None
        first = next_id(con, "al_proposals", "proposal_id")
        n_dec = int((comp != 0).sum())
        con.execute("INSERT INTO al_rounds (campaign_id, round_no, n_train, train_hash, gp, n_proposed, "
                    "n_decodable, seconds, proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [c.campaign_id, round_no, len(train), training_hash(train), json.dumps(hyper),
                     len(picks), n_dec, round(time.perf_counter() - t0, 3), dt.datetime.now()])
        append(con, "al_proposals", pl.DataFrame({
            "proposal_id": np.arange(first, first + len(picks), dtype=np.int64),
            "campaign_id": pl.Series([c.campaign_id] * len(picks), dtype=pl.Int32),
            "round_no": pl.Series([round_no] * len(picks), dtype=pl.Int32),
            "rank": pl.Series(np.arange(len(picks)), dtype=pl.Int32),
            "latent": pl.Series(z[picks].astype(np.float32).tolist(), dtype=pl.List(pl.Float32)),
            "composition_id": pl.Series([int(v) if v else None for v in comp], dtype=pl.Int64),
            "formula": pl.Series(list(formula), dtype=pl.String),
            "acquisition": values.astype(np.float64),
            "mean": mean[picks].astype(np.float64), "std": std[picks].astype(np.float64)}))
    res.decodable = n_dec
    res.seconds = time.perf_counter() - t0
    return res


def pool_candidates(store: Store, ae, selection: str, exclude, n: int, rng: np.random.Generator):
    """Candidates of a pool-based campaign (`candidates_from`): the compositions the selection
    returns (e.g. a generated set), less the known and proposed ones, a seeded random n of them
    if more, that fit the 8x85 map; (latents (m, d), atomic numbers (m, 8), counts (m, 8)). A
    pick proposes the composition itself (its latent is the encoding, nothing is decoded)."""
    import duckdb  # noqa: PLC0415

    from ..compositions import CompositionBatch  # noqa: PLC0415

    sel = check_selection(selection, "al start --candidates-from")
    try:
        with store.connect(write=False, guarded=True) as con:
            df = frame(con, "SELECT composition_id, elements, counts FROM compositions WHERE composition_id IN "
                            f"(SELECT composition_id FROM ({sel}) s) ORDER BY composition_id")
    except duckdb.Error as e:
        raise friendly(e, f"--candidates-from {selection.strip()!r}") from None
    df = df.filter(~pl.col("composition_id").is_in(list(exclude)))
    if df.height > n:
        df = df[np.sort(rng.choice(df.height, n, replace=False))]
    lat = latents.ensure(store, ae, df["composition_id"].to_numpy()) if df.height else None
    if lat is None or lat.height == 0:
        raise ALError(f"--candidates-from {selection.strip()!r}: no composition left to propose "
                      f"(none, all known or proposed, or none fits the 8x85 map)")
    df = df.join(lat, on="composition_id", how="inner").sort("composition_id")
    b = CompositionBatch.from_lists(df["elements"].to_list(), df["counts"].to_list(), df["composition_id"].to_numpy())
    el = np.zeros((len(b), 8), np.int64)
    counts = np.zeros((len(b), 8), np.int64)
    el[:, :b.z.shape[1]], counts[:, :b.counts.shape[1]] = b.z, b.counts
    return latents.matrix(df), el, counts


def run(store: Store, campaign_id: int, rounds: int = 1, progress=None) -> list[StepResult]:
    """Step `rounds` times (a model oracle campaign), returning each step's result."""
    out = []
    for _ in range(int(rounds)):
        out.append(step(store, campaign_id))
        if progress:
            progress(out[-1])
    return out


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
    on = (f"SELECT composition_id FROM composition_sets WHERE set_name = '{c.base_set}' "
          f"UNION SELECT composition_id FROM al_labels WHERE campaign_id = {int(c.campaign_id)}")
    mv = train(store, preset, on=on, target_source=[*sources, c.base_source] if sources else c.base_source,
               name=name or f"{preset}-al{c.campaign_id}", seed=int(c.seed), progress=progress, **train_kwargs)
    with store.connect() as con:
        n_rows = con.execute("SELECT training_rows FROM model_versions WHERE model_id = ?",
                             [mv.model_id]).fetchall()[0][0]
    res = FinishResult(c.campaign_id, mv.ref, mv.model_id, n_rows)
    if pool is not None:
        res.n_pool, res.candidates = _screen_labelled(store, c, mv.ref, sel, threshold, progress)
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
    import duckdb  # noqa: PLC0415

    try:
        with store.connect(write=False, guarded=True) as con:
            con.execute(f"SELECT count(*) FROM (SELECT composition_id FROM ({sel}) s)").fetchall()
    except duckdb.Error as e:
        raise friendly(e, f"{option} {pool.strip()!r}") from None
    return sel


def _pool_predictions(store: Store, model: str, sel: str, progress: bool) -> pl.DataFrame:
    """Predict the pool (sel: a checked selection returning composition_id, see check_pool) with
    `model`: (composition_id, formula, value) of every pool composition it could predict, best first."""
    from ..predict import predict  # noqa: PLC0415
    from ..registry import load_model  # noqa: PLC0415

    predict(store, model, where=f"c.composition_id IN (SELECT composition_id FROM ({sel}))",
            progress=progress)
    m = load_model(store, model)
    with store.connect(guarded=True) as con:
        return frame(con, f"SELECT p.composition_id, c.formula, p.value FROM predictions p "
                          f"JOIN compositions c USING (composition_id) "
                          f"WHERE p.model_id = ? AND p.value IS NOT NULL "
                          f"AND p.composition_id IN (SELECT composition_id FROM ({sel})) "
                          f"ORDER BY p.value DESC", [m.model_id])


def _meets(values, target, threshold) -> np.ndarray:
    t = acq.Target.parse(target)
    values = np.asarray(values, np.float64)
    return values >= threshold if t.goal == "max" else t.hit(values)


def screen(store: Store, model: str, pool: str, target, threshold: float | None = None,
           progress: bool = False) -> tuple[int, pl.DataFrame]:
    """Predict the pool (SQL returning composition_id) with `model` and keep what meets the
    target: in [a, b] for a range, >= threshold for max. Returns (pool size, candidates)."""
    sel = check_pool(store, check_screen_args(pool, target, threshold), pool)
    df = _pool_predictions(store, model, sel, progress)
    return df.height, df.filter(pl.Series(_meets(df["value"], target, threshold)))


def screen_campaign(store: Store, campaign_id: int, model: str, pool: str, threshold: float | None = None,
                    progress: bool = False) -> tuple[int, pl.DataFrame]:
    """Screen the pool for a campaign's target: a pool composition the campaign labelled is
    decided by its label (a DFT or lab value outranks a prediction), the others by `model`'s
    prediction. Returns (pool size, candidates best first); columns: composition_id, formula,
    value (the prediction), label, label_source (NULL when unlabelled) and screened_by
    ('label' or 'prediction')."""
    c = campaigns.get(store, campaign_id)
    return _screen_labelled(store, c, model, check_pool(store, check_screen_args(pool, c.target, threshold), pool),
                            threshold, progress)


def _screen_labelled(store: Store, c: Campaign, model: str, sel: str, threshold, progress: bool):
    """screen_campaign for a loaded campaign and a checked pool selection."""
    df = _pool_predictions(store, model, sel, progress)
    with store.connect() as con:
        lab = frame(con, "SELECT composition_id, value AS label, source AS label_source FROM al_labels "
                         "WHERE campaign_id = ? AND value IS NOT NULL ORDER BY proposal_id", [c.campaign_id])
    df = df.join(lab.unique("composition_id", keep="first"), on="composition_id", how="left").with_columns(
        pl.when(pl.col("label").is_null()).then(pl.lit("prediction")).otherwise(pl.lit("label")).alias("screened_by"))
    decided = df.select(pl.coalesce("label", "value")).to_series()
    keep = pl.Series(_meets(decided, c.target, threshold))
    out = df.with_columns(decided.alias("_decided")).filter(keep).sort("_decided", descending=True).drop("_decided")
    return df.height, out
