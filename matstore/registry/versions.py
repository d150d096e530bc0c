"""Saving a model version and loading one back for prediction or sampling."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import polars as pl

from .. import models
from ..models import ensemble
from ..models.loops import PREDICT_ROWS, predict_module
from ..store import Store, append
from .records import ModelError, ModelVersion, get_record, insert_version, software_versions, to_json
from .weights import model_card, rebuild, serialize

def save_model(store: Store, name: str, kind: str, module_or_estimator, config, hyperparams: dict,
               training_query: str | None, training_rows: int | None, data_hash: str | None,
               split: dict | None, metrics: dict | None, device: str | None, seed: int | None,
               split_ids: dict[str, np.ndarray] | None = None) -> ModelVersion:
    """Write one model version; split_ids (role -> composition ids) go to composition_sets."""
    if not name or "@" in name or "#" in name or name.isdigit():
        raise ModelError(f"model name {name!r}: must be non-empty, not a number, and contain no '@' or '#'")
    models.make_config(kind, models.config_dict(config))  # fails early on a bad kind/config
    card = json.loads(to_json(model_card(kind, config, hyperparams, module_or_estimator)))  # JSON types
    weights = serialize(kind, module_or_estimator, card)
    sha = hashlib.sha256(weights).hexdigest()
    row = {"name": name, "kind": kind, "config": to_json(models.config_dict(config)),
           "hyperparams": to_json(hyperparams or {}), "training_query": training_query,
           "training_rows": training_rows, "data_hash": data_hash, "split": to_json(split),
           "metrics": to_json(metrics or {}), "weights": weights, "weights_sha256": sha,
           "software": to_json(software_versions()), "device": device, "seed": seed,
           "created_at": dt.datetime.now(), "card": to_json(card)}
    with store.transaction() as con:
        model_id, version = insert_version(con, row)
        if split_ids:
            sets = [pl.DataFrame({"set_name": f"{name}@{version}/{role}",
                                  "composition_id": np.asarray(ids, dtype=np.int64),
                                  "model_id": model_id, "role": role,
                                  "created_at": row["created_at"]})
                    for role, ids in split_ids.items() if len(ids)]
            if sets:
                append(con, "composition_sets", pl.concat(sets))
    return ModelVersion(model_id, name, version, kind, sha, metrics or {})


class LoadedModel:
    """A stored version rebuilt: ``.module`` (eval mode) plus what predict/sample need."""

    def __init__(self, record: dict, module):
        self.record = {k: v for k, v in record.items() if k != "weights"}
        self.module = module
        self.model_id: int = record["model_id"]
        self.name: str = record["name"]
        self.version: int = record["version"]
        self.kind: str = record["kind"]
        self.family = models.get(self.kind)
        self.config = self.family.make_config(record["config"])
        hp = record.get("hyperparams") or {}
        self.property: str | None = hp.get("property")
        self.featurizer: str | None = hp.get("featurizer")
        self.members = ensemble.spec(hp)   # None: one model; else K members (two-stage or not)
        self.device = "cpu"

    def __repr__(self) -> str:
        return f"LoadedModel({self.name}@{self.version}, kind={self.kind}, id={self.model_id})"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def identity(self) -> str:
        """NAME@N#SHA12: the weights hash names this version in every store it goes to."""
        return f"{self.ref}#{self.record['weights_sha256'][:12]}"

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def to(self, device) -> "LoadedModel":
        if self.family.torch:
            self.module.to(device)
            self.device = str(device)
        return self

    def predict(self, batch, device=None, batch_size: int | None = None) -> np.ndarray:
        """Property values (n,) for a CompositionBatch (NaN where the featurizer cannot encode a row)."""
        return self.predict_outputs(batch, device, batch_size).value

    def predict_outputs(self, batch, device=None, batch_size: int | None = None) -> ensemble.Outputs:
        """Value, std and p_metal (n,) for a CompositionBatch (NaN where the featurizer cannot
        encode a row; std NaN for one model, p_metal NaN unless two-stage)."""
        if not self.family.predictor:
            raise ModelError(f"model {self.ref} is a {self.kind}, not a property predictor")
        x, ok = self.family.encode(batch, self.featurizer, models.config_dict(self.config))
        out = ensemble.Outputs.empty(len(batch))
        if ok.any():
            out.put(ok, self.predict_features_outputs(x, device=device, batch_size=batch_size))
        return out

    def predict_features(self, x: np.ndarray, device=None, batch_size: int | None = None) -> np.ndarray:
        """Predictions for an already featurized input (training and benchmarks use this): the
        value (an ensemble's mean; band gaps never negative)."""
        return self.predict_features_outputs(x, device, batch_size).value

    def member_outputs(self, x: np.ndarray, device=None, batch_size: int | None = None) -> np.ndarray:
        """A composite's raw member outputs (n, K, C) for featurized x (see models.ensemble)."""
        if self.members is None:
            raise ModelError(f"model {self.ref} is one model, not a composite of members")
        return self.family.member_outputs(self.module, x, self.members, device or self.device, batch_size)

    def predict_features_outputs(self, x: np.ndarray, device=None,
                                 batch_size: int | None = None) -> ensemble.Outputs:
        """Value, std and p_metal for featurized x; the one place a version's outputs are made,
        used by predict and the fused generate stage alike."""
        if self.members is not None:
            return ensemble.combine(self.member_outputs(x, device, batch_size), self.property,
                                    self.members.two_stage, self.members.std_scale)
        v = self.family.predict(self.module, x, device or self.device, batch_size)
        n = len(v)
        return ensemble.Outputs(ensemble.clamp(self.property, v), np.full(n, np.nan), np.full(n, np.nan))

    def sample(self, n: int, generator=None, device=None, **sampling):
        """What ``decode`` reads: n samples of a random draw from the generator (the family
        says what: (n, 8, 85) probabilities for map generators, (z, counts) arrays for a
        transformer). sampling: per-draw options the kind takes (family.sampling_options, e.g.
        a transformer's temperature / top_p; default: the version's config)."""
        if not self.family.generator:
            raise ModelError(f"model {self.ref} is a {self.kind}; only generators sample")
        extra = sorted(set(sampling) - set(self.family.sampling_options))
        if extra:
            raise ModelError(f"model {self.ref} is a {self.kind}: {' and '.join(extra)} do not apply "
                             f"to it (it takes {', '.join(self.family.sampling_options) or 'none'})")
        return self.family.sample(self, n, generator, device, **sampling)

    def decode(self, samples, tolerance: float | None, batch_no: int, first_sample: int):
        """What ``sample`` returned -> samples.DecodedBatch (the runner does not look inside)."""
        return self.family.decode(samples, tolerance, batch_no, first_sample)


def load_model(store: Store, ref, device=None) -> LoadedModel:
    """'name' (latest version), 'name@N' or a model id -> LoadedModel (eval mode, on device)."""
    record = get_record(store, ref)
    loaded = LoadedModel(record, rebuild(record))
    if device is not None:
        loaded.to(device)
    return loaded
