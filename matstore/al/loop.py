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
from ..selection import by_ids, check_query as check_selection, selection_ids
from ..store import Store, append, frame, next_id
from . import acquisition as acq
from . import campaigns, labels, latents, oracles, surrogate
from .campaigns import Campaign
from .screening import check_pool
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
    from ..registry import resolve  # noqa: PLC0415

    ae = resolve(store, ref, device="cpu")
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
    source = data.target_source(store, property, base_source, option="--base-source")
    check_selection(base_selection, "al start --base")
    try:
        ds = data.load(store, base_selection, property, max_rows=base_rows, seed=seed, source=source.source,
                       option="al start --base")
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
    from ..compositions import CompositionBatch  # noqa: PLC0415

    ids = selection_ids(store, selection, "al start --candidates-from")
    df = by_ids(store, ids)
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
