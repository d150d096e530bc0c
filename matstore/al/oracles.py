"""The oracles that label proposals (the one list: ORACLES, read by the CLI and the loop).

- ``model:NAME@N``: a registered property predictor labels each decodable proposal during
  ``al step`` (the paper's setting: an oracle trained on all data stands in for DFT). Its
  labels go to source ``al<ID>-oracle`` (kind ``model``, method ``NAME@N``).
- ``external``: nobody labels during the step; ``al export`` writes the round's proposals, the
  user computes them (DFT, lab) and ``al label FILE --source NAME`` stores the values; the next
  ``al step`` fits the GP on exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..compositions import CompositionBatch
from ..store import Store
from . import labels
from .campaigns import Campaign
from ..plugins import Registry
from .errors import ALError


@dataclass(frozen=True)
class OracleKind:
    name: str
    automatic: bool          # labels a round itself during `al step`
    description: str


ORACLES: Registry[OracleKind] = Registry("oracle", ((o.name, o) for o in [
    OracleKind("model", True, "model:NAME@N - a registered property predictor labels the proposals"),
    OracleKind("external", False, "external - export the proposals, compute them, `al label` the values"),
]), error=ALError)


def parse(spec: str) -> tuple[OracleKind, str | None]:
    """'model:NAME@N' | 'external' -> (kind, model reference or None)."""
    kind, sep, arg = str(spec).partition(":")
    if kind not in ORACLES:
        raise ALError(f"oracle {spec!r}: expected one of model:NAME@N, external")
    if ORACLES[kind].automatic and not (sep and arg.strip()):
        raise ALError(f"oracle {spec!r}: name the predictor, e.g. model:rf-bg@1")
    if not ORACLES[kind].automatic and sep:
        raise ALError(f"oracle {spec!r}: the external oracle takes no argument")
    return ORACLES[kind], (arg.strip() or None)


def load_predictor(store: Store, ref: str, prop: str):
    """The oracle's predictor (checked: a predictor of `prop`)."""
    from ..predict import is_predictor  # noqa: PLC0415
    from ..registry import resolve  # noqa: PLC0415

    model = resolve(store, ref, device="cpu")
    if not is_predictor(model):
        raise ALError(f"oracle model {model.ref} is a {model.kind}, not a property predictor")
    if model.property != prop:
        raise ALError(f"oracle model {model.ref} predicts {model.property}, the campaign's property "
                      f"is {prop}")
    return model


def label_round(store: Store, campaign: Campaign, todo: pl.DataFrame, model=None) -> int:
    """Label a round's unlabelled decodable proposals (campaigns.unlabelled) with the campaign's
    model oracle; returns labels written. Proposals it cannot featurize stay unlabelled."""
    kind, ref = parse(campaign.oracle)
    if not kind.automatic:
        raise ALError(f"campaign {campaign.campaign_id} has an external oracle: label with `al label`")
    if todo.height == 0:
        return 0
    model = model or load_predictor(store, ref, campaign.property)
    if model.model_id != campaign.oracle_model_id:
        raise ALError(f"oracle {campaign.oracle} is model id {model.model_id} in this store, the "
                      f"campaign was started with model id {campaign.oracle_model_id}")
    batch = CompositionBatch.from_lists(todo["elements"].to_list(), todo["counts"].to_list(),
                                        todo["composition_id"].to_numpy())
    values = np.asarray(model.predict(batch), np.float64)
    ok = np.isfinite(values)
    return labels.write(store, campaign, todo["proposal_id"].to_numpy()[ok], values[ok],
                        source=labels.oracle_source(campaign.campaign_id), kind="model",
                        method=model.ref, model_id=model.model_id, origin=f"oracle {model.ref}")
