"""Campaign records: the campaign row, its base set, rounds, proposals and labels as stored.

A campaign's base set (the labelled compositions it starts from) is materialised once, at start,
as the composition set ``al<ID>/base`` (role ``al_base``): later ingests do not change it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..store import Store, append, frame, next_id
from .acquisition import Target
from .errors import ALError


@dataclass(frozen=True)
class Campaign:
    campaign_id: int
    name: str | None
    property: str
    target: Target
    acquisition: str
    kappa: float
    batch_size: int
    oracle: str
    oracle_model_id: int | None
    autoencoder_id: int
    base_selection: str
    base_source: str
    base_rows: int
    params: dict
    seed: int

    @property
    def base_set(self) -> str:
        return base_set_name(self.campaign_id)

    @property
    def levels(self) -> tuple[float, ...]:
        """The property levels a level-set acquisition tracks (see acquisition.tracked_levels)."""
        from .acquisition import tracked_levels  # noqa: PLC0415

        return tracked_levels(self.acquisition, self.target, self.params.get("threshold"))

    @property
    def models_property(self) -> bool:
        """The GP models the property itself (level-set acquisitions), not the target's objective."""
        from .acquisition import LEVEL_SET  # noqa: PLC0415

        return self.acquisition in LEVEL_SET


def base_set_name(campaign_id: int) -> str:
    return f"al{int(campaign_id)}/base"


_COLS = ("campaign_id, name, property, target::VARCHAR, acquisition, kappa, batch_size, oracle, "
         "oracle_model_id, autoencoder_id, base_selection, base_source, base_rows, "
         "params::VARCHAR, seed")


def insert(con, *, name, property, target: Target, acquisition, kappa, batch_size, oracle,
           oracle_model_id, autoencoder_id, base_selection, base_source, base_ids: np.ndarray,
           params: dict, seed: int) -> int:
    """Write the campaign row and its base set in the caller's transaction; returns its id."""
    cid = next_id(con, "al_campaigns", "campaign_id")
    now = dt.datetime.now()
    con.execute(f"INSERT INTO al_campaigns ({_COLS.replace('::VARCHAR', '')}, created_at) VALUES "
                f"({', '.join('?' * 15)}, ?)",
                [cid, name, property, json.dumps(target.to_dict()), acquisition, float(kappa),
                 int(batch_size), oracle, oracle_model_id, autoencoder_id, base_selection, base_source,
                 len(base_ids), json.dumps(params), int(seed), now])
    append(con, "composition_sets", pl.DataFrame({
        "set_name": base_set_name(cid), "composition_id": np.asarray(base_ids, np.int64),
        "model_id": pl.Series([None] * len(base_ids), dtype=pl.Int32), "role": "al_base",
        "created_at": now}))
    return cid


def get(store: Store, campaign_id: int) -> Campaign:
    with store.connect() as con:
        rows = con.execute(f"SELECT {_COLS} FROM al_campaigns WHERE campaign_id = ?",
                           [int(campaign_id)]).fetchall()
    if not rows:
        raise ALError(f"no active-learning campaign {campaign_id} in {store.path} "
                      f"(start one with `matstore al start`)")
    r = rows[0]
    c = Campaign(r[0], r[1], r[2], Target.parse(json.loads(r[3])), r[4], r[5], r[6], r[7], r[8],
                 r[9], r[10], r[11], r[12], json.loads(r[13] or "{}"), r[14])
    check_settings(c.acquisition, c.kappa, c.batch_size, c.params, f"campaign {c.campaign_id}")
    try:
        c.levels          # a received store's threshold is checked like `al start`'s
    except ALError as e:
        raise ALError(f"campaign {c.campaign_id}: {e}") from None
    return c


MAX_CANDIDATES = 200_000   # latent points scored per pick: memory grows with it (a received
                           # store's settings are checked too: a huge count would exhaust memory)


def check_settings(acquisition: str, kappa: float, batch_size: int, params: dict, what: str) -> None:
    """The checks `al start` makes, applied to a stored campaign as well (perhaps a received one)."""
    import math  # noqa: PLC0415

    from .acquisition import check  # noqa: PLC0415

    check(acquisition, float(kappa))
    try:
        n = int(params.get("n_candidates", 0))
        frac, step = float(params.get("local_fraction", 0.5)), float(params.get("step", 0.1))
    except (TypeError, ValueError):
        raise ALError(f"{what}: settings {params!r} are not numbers") from None
    if not 1 <= int(batch_size) <= n <= MAX_CANDIDATES:
        raise ALError(f"{what}: batch_size {batch_size} must be >= 1 and <= n_candidates {n}, "
                      f"at most {MAX_CANDIDATES:,}")
    if not (0.0 <= frac <= 1.0 and math.isfinite(step) and step > 0):
        raise ALError(f"{what}: local_fraction must be in [0, 1] and step a finite number > 0")
    near = params.get("near_levels")
    if near is not None:
        try:
            near = float(near)
        except (TypeError, ValueError):
            near = math.nan
        if not 0.0 < near <= 1.0:
            raise ALError(f"{what}: near_levels {params.get('near_levels')!r} must be a fraction in (0, 1]")


def open_round(con, campaign_id: int) -> int | None:
    """The round whose labels are awaited (proposed, not closed), if any."""
    rows = con.execute("SELECT max(round_no) FROM al_rounds WHERE campaign_id = ? AND closed_at IS NULL",
                       [campaign_id]).fetchall()
    return rows[0][0]


def last_round(con, campaign_id: int) -> int:
    return con.execute("SELECT coalesce(max(round_no), 0) FROM al_rounds WHERE campaign_id = ?",
                       [campaign_id]).fetchall()[0][0]


def proposals(store: Store, campaign_id: int, round_no: int | None = None) -> pl.DataFrame:
    """Proposals (with their label, if any) of a campaign, or of one round."""
    sql = ("SELECT p.proposal_id, p.round_no, p.rank, p.composition_id, p.formula, p.acquisition, "
           "p.mean, p.std, l.value AS label, l.source AS label_source, l.model_id AS label_model_id "
           "FROM al_proposals p LEFT JOIN al_labels l USING (proposal_id) WHERE p.campaign_id = ?")
    params = [int(campaign_id)]
    if round_no is not None:
        sql += " AND p.round_no = ?"
        params.append(int(round_no))
    with store.connect() as con:
        return frame(con, sql + " ORDER BY p.round_no, p.rank", params)


def unlabelled(con, campaign_id: int, round_no: int) -> pl.DataFrame:
    """Decodable proposals of a round that have no label yet."""
    return frame(con, "SELECT p.proposal_id, p.composition_id, p.formula, c.elements, c.counts "
                      "FROM al_proposals p JOIN compositions c USING (composition_id) "
                      "WHERE p.campaign_id = ? AND p.round_no = ? AND p.composition_id IS NOT NULL "
                      "AND p.proposal_id NOT IN (SELECT proposal_id FROM al_labels) "
                      "ORDER BY p.rank", [campaign_id, round_no])


def close_round(con, campaign_id: int, round_no: int) -> None:
    con.execute("UPDATE al_rounds SET closed_at = ? WHERE campaign_id = ? AND round_no = ? "
                "AND closed_at IS NULL", [dt.datetime.now(), campaign_id, round_no])


def status(store: Store, campaign_id: int | None = None) -> pl.DataFrame:
    """One row per campaign (or the one asked): rounds, proposals, decodable, labels, open round."""
    where = "" if campaign_id is None else "WHERE c.campaign_id = ?"
    with store.connect() as con:
        df = frame(con, f"""
            SELECT c.campaign_id, c.name, c.property, c.target::VARCHAR AS target, c.acquisition,
                   c.kappa, c.oracle, c.base_rows,
                   (SELECT count(*) FROM al_rounds r WHERE r.campaign_id = c.campaign_id) AS rounds,
                   (SELECT max(round_no) FROM al_rounds r WHERE r.campaign_id = c.campaign_id
                        AND r.closed_at IS NULL) AS open_round,
                   (SELECT count(*) FROM al_proposals p WHERE p.campaign_id = c.campaign_id) AS proposals,
                   (SELECT count(composition_id) FROM al_proposals p
                        WHERE p.campaign_id = c.campaign_id) AS decodable,
                   (SELECT count(*) FROM al_labels l WHERE l.campaign_id = c.campaign_id) AS labels,
                   (SELECT max(value) FROM al_labels l WHERE l.campaign_id = c.campaign_id) AS best_label
            FROM al_campaigns c {where} ORDER BY c.campaign_id""",
                   [] if campaign_id is None else [int(campaign_id)])
    if campaign_id is not None and df.height == 0:
        raise ALError(f"no active-learning campaign {campaign_id} in {store.path}")
    return df
