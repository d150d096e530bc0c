"""Weights and model cards through the kind's family: the card, the weights bytes, and rebuilding
a checked module from a record (sha256, then the family's own checks); raises ModelError."""

from __future__ import annotations

import hashlib

from .. import bounds, models
from ..models import ensemble
from ..models.errors import WeightsError
from ..models.family import for_stored_weights
from ..models.torch_weights import WEIGHTS_FORMAT, state_dict_of
from .records import ModelError

CARD_FORMAT = "matstore-model-card/1"

__all__ = ["CARD_FORMAT", "WEIGHTS_FORMAT", "model_card", "serialize", "rebuild", "state_dict_of"]


def model_card(kind: str, config, hyperparams: dict | None, module=None) -> dict:
    """What a version is, in plain JSON (strings, numbers, lists): the network, its inputs (the
    featurizer's name, version, shape and labels, or the latent vector), its outputs and target.
    Stored in model_versions.card and inside torch weights, so either says what the other is."""
    card = {"format": CARD_FORMAT, "kind": kind,
            "architecture": type(module).__name__ if module is not None else None,
            "config": models.config_dict(config)}
    card.update(models.get(kind).card(config, hyperparams or {}))
    return card


def serialize(kind: str, module, card: dict | None = None) -> bytes:
    return models.get(kind).serialize(module, card or {})


def rebuild(record: dict):
    """The module/estimator from a record's config and weights, checked; raises ModelError."""
    ref = f"{record['name']}@{record['version']} (id {record['model_id']})"
    weights = record.get("weights")
    kind = record["kind"]
    if weights is None:
        try:
            family = models.get(kind)
        except ValueError as e:
            raise ModelError(f"model {ref}: {e}") from None
        if family.weights_in_store:
            raise ModelError(f"model {ref} has no weights stored")
        try:   # weights outside the store (a wheel's file): the family checks them against the sha256
            with for_stored_weights():
                return family.load(None, record, None, ref)
        except WeightsError as e:
            raise ModelError(str(e)) from None
    sha = hashlib.sha256(weights).hexdigest()
    if sha != record.get("weights_sha256"):
        raise ModelError(f"model {ref}: weights are corrupt (sha256 {sha[:12]}... does not match "
                         f"the recorded {str(record.get('weights_sha256'))[:12]}...)")
    with for_stored_weights():   # the weights carry what the modules would otherwise load (umap...)
        return _rebuild(kind, record, weights, ref)


def _rebuild(kind: str, record: dict, weights: bytes, ref: str):
    try:
        family = models.get(kind)
        members = ensemble.spec(record.get("hyperparams"))
        if family.torch:   # sized on torch's meta device, then the blob's declared size, before loading
            try:
                values = bounds.model_values(kind, record["config"], (
                    (lambda k, c: ensemble.Members.build(k, c, members)) if members is not None
                    else models.build))
            except bounds.BoundsError as e:
                raise ModelError(f"model {ref}: {e}") from None
            try:
                bounds.check_weights_blob(weights, values, ref)
            except bounds.BoundsError as e:
                raise ModelError(str(e)) from None
        return family.load(weights, record, members, ref)
    except WeightsError as e:
        raise ModelError(str(e)) from None
    except (ValueError, TypeError) as e:
        raise ModelError(f"model {ref}: stored config does not build a {kind}: {e}") from None
