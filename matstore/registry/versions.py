"""Saving a model version and loading one back for prediction or sampling."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import polars as pl

from .. import models
from ..models import ensemble
from ..store import Store, append
from .records import ModelError, ModelVersion, get_record, insert_version, software_versions, to_json
from .weights import model_card, rebuild, serialize

def save_model(store: Store, name: str, kind: str, module_or_estimator, config, hyperparams: dict,
               training_query: str | None, training_rows: int | None, data_hash: str | None,
               split: dict | None, metrics: dict | None, device: str | None, seed: int | None,
               split_ids: dict[str, np.ndarray] | None = None) -> ModelVersion:
    """Write one model version; split_ids (role -> composition ids) go to composition_sets."""
    if not name or "@" in name:
        raise ModelError(f"model name {name!r}: must be non-empty and contain no '@'")
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
        self.config = models.make_config(self.kind, record["config"])
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
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def to(self, device) -> "LoadedModel":
        if self.kind in models.TORCH_KINDS:
            self.module.to(device)
            self.device = str(device)
        return self

    def predict(self, batch, device=None, batch_size: int | None = None) -> np.ndarray:
        """Property values (n,) for a CompositionBatch (NaN where the featurizer cannot encode a row)."""
        return self.predict_outputs(batch, device, batch_size).value

    def predict_outputs(self, batch, device=None, batch_size: int | None = None) -> ensemble.Outputs:
        """Value, std and p_metal (n,) for a CompositionBatch (NaN where the featurizer cannot
        encode a row; std NaN for one model, p_metal NaN unless two-stage)."""
        if self.kind not in models.PREDICTOR_KINDS:
            raise ModelError(f"model {self.ref} is a {self.kind}, not a property predictor")
        from .. import features  # noqa: PLC0415

        ok = np.asarray(features.get(self.featurizer).encodable(batch), bool)
        out = ensemble.Outputs.empty(len(batch))
        if ok.any():
            b = batch if ok.all() else type(batch)(batch.composition_id[ok], batch.z[ok], batch.counts[ok])
            x = models.featurize(self.kind, self.featurizer, b)
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
        out = predict_module(self.module, x, device or self.device, batch_size)
        return out.reshape(len(x), self.members.k, 2 if self.members.two_stage else 1)

    def predict_features_outputs(self, x: np.ndarray, device=None,
                                 batch_size: int | None = None) -> ensemble.Outputs:
        """Value, std and p_metal for featurized x; the one place a version's outputs are made,
        used by predict and the fused generate stage alike."""
        if self.members is not None and not models.KINDS[self.kind].torch:   # a forest's trees
            return ensemble.combine(self.module.predict_trees(x)[..., None], self.property, False,
                                    self.members.std_scale)
        if self.members is not None:
            return ensemble.combine(self.member_outputs(x, device, batch_size), self.property,
                                    self.members.two_stage, self.members.std_scale)
        if not models.KINDS[self.kind].torch:   # the forest predicts on numpy itself
            v = self.module.predict(x)
        else:
            v = predict_module(self.module, x, device or self.device, batch_size)
        n = len(v)
        return ensemble.Outputs(ensemble.clamp(self.property, v), np.full(n, np.nan), np.full(n, np.nan))

    def sample(self, n: int, generator=None, device=None, **sampling):
        """(n, 8, 85) probabilities from the generator (wgan) or decoder of a random latent;
        for a transformer, (z, counts) arrays of n sampled compositions. ``decode`` turns
        either into a batch of compositions. sampling: a transformer's temperature / top_p
        for this draw (default: the version's config)."""
        import torch  # noqa: PLC0415

        if self.kind == "transformer":
            if device is not None and str(device) != self.device:
                self.to(device)
            return self.module.sample(n, generator, device or self.device, **sampling)
        if sampling:
            raise ModelError(f"model {self.ref} is a {self.kind}: temperature and top-p apply to "
                             f"transformer generators only")
        if self.kind == "wgan":
            if device is not None and str(device) != self.device:
                self.to(device)
            return self.module.sample(n, generator, device or self.device)
        if self.kind == "autoencoder":
            device = device or self.device
            self.to(device)
            gen_device = generator.device if generator is not None else device
            z = torch.randn(n, self.latent_dim, generator=generator, device=gen_device).to(device)
            with torch.no_grad():
                return self.module.decode(z)
        raise ModelError(f"model {self.ref} is a {self.kind}; only generators sample")

    def decode(self, samples, tolerance: float | None, batch_no: int, first_sample: int):
        """What ``sample`` returned -> samples.DecodedBatch (the runner does not look inside):
        one-hot maps are thresholded (samples.decode_batch), token samples are compositions."""
        from .. import samples as decoding  # noqa: PLC0415

        if models.KINDS[self.kind].inputs == "maps":
            return decoding.decode_batch(samples, tolerance, batch_no, first_sample)
        return decoding.decode_rows(*samples, batch_no, first_sample)


# Rows per forward pass. Every pass has exactly this many rows (the last one zero-padded): BLAS
# and conv kernels reduce in an order that depends on the batch's shape, so a row's value would
# otherwise change (by ~1e-8) with the rows that share its batch - and a resumed or separate
# prediction run would not equal a fused, uninterrupted one.
PREDICT_ROWS = {"cpu": 1024, "cuda": 16384}   # the GPU wants bigger passes


def predict_module(module, x: np.ndarray, device, batch_size: int | None = None) -> np.ndarray:
    """Run a regressor module over x in fixed-shape batches on device; same path for cpu and cuda.
    A row's value depends only on that row (and batch_size), not on which rows come with it."""
    import torch  # noqa: PLC0415

    rows = int(batch_size or PREDICT_ROWS["cuda" if str(device).startswith("cuda") else "cpu"])
    module.eval()
    module.to(device)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), rows):
            part = np.asarray(x[i:i + rows], dtype=np.float32)
            m = len(part)
            if m < rows:
                part = np.concatenate([part, np.zeros((rows - m,) + part.shape[1:], np.float32)])
            xb = torch.as_tensor(part, device=device)
            out.append(module(xb)[:m].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def load_model(store: Store, ref, device=None) -> LoadedModel:
    """'name' (latest version), 'name@N' or a model id -> LoadedModel (eval mode, on device)."""
    record = get_record(store, ref)
    loaded = LoadedModel(record, rebuild(record))
    if device is not None:
        loaded.to(device)
    return loaded
