"""Weights formats: the model card, torch weights (card + state_dict, read with weights_only=True), forests
as plain arrays; rebuilding a checked module from a record."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from .. import bounds, models
from ..models import ensemble, forest
from .records import ModelError

CARD_FORMAT = "matstore-model-card/1"
WEIGHTS_FORMAT = "matstore-torch-weights/1"   # torch weights: {"format", "card", "state_dict"}



def model_card(kind: str, config, hyperparams: dict | None, module=None) -> dict:
    """What a version is, in plain JSON (strings, numbers, lists): the network, its inputs (the
    featurizer's name, version, shape and labels, or the latent vector), its outputs and target.
    Stored in model_versions.card and inside torch weights, so either says what the other is."""
    from ..sources import UNITS  # noqa: PLC0415

    hp = hyperparams or {}
    card = {"format": CARD_FORMAT, "kind": kind,
            "architecture": type(module).__name__ if module is not None else None,
            "config": models.config_dict(config)}
    if models.KINDS[kind].inputs == "tokens":   # a composition language model
        cfg = models.make_config(kind, card["config"])
        card["inputs"] = {"featurizer": "tokens", "shape": [cfg.max_len], "labels": None,
                          "meaning": "BOS, (element, count) tokens in the config's element order, EOS"}
        card["outputs"] = {"featurizer": "tokens", "shape": [cfg.vocab], "labels": None,
                           "meaning": "next-token logits; sample() returns (z, counts) rows"}
        card["latent_dim"] = None
        return card
    if kind in models.GENERATIVE_KINDS:   # latent vector in, one-hot composition maps out
        from ..features import onehot  # noqa: PLC0415

        out = onehot.OneHot()
        maps = {"featurizer": out.name, "featurizer_version": out.version,
                "shape": list(out.shape), "labels": list(out.labels)}
        latent = getattr(models.make_config(kind, card["config"]), "latent_dim", None)
        # the GAN's generator reads a latent vector; the autoencoder reads maps (and decodes latents)
        card["inputs"] = ({"featurizer": "latent", "shape": [latent], "labels": None}
                          if kind == "wgan" else maps)
        card["outputs"] = {**maps, "meaning": "probability of each (element, count) cell; "
                                              "decode with matstore.features.onehot.decode"}
        card["latent_dim"] = latent
        return card
    from .. import features  # noqa: PLC0415

    name = hp.get("featurizer")
    f = features.get(name) if name else None
    card["inputs"] = ({"featurizer": name, "featurizer_version": f.version,
                       "shape": list(f.shape), "labels": list(f.labels)} if f else None)
    prop = hp.get("property")
    card["target"] = {"property": prop, "unit": UNITS.get(prop), "source": hp.get("target_source"),
                      "source_kind": hp.get("target_kind"), "method": hp.get("target_method")}
    if hp.get("members"):   # a composite: K members (two-stage: classifier + regressor each)
        card["members"] = hp["members"]
    return card


def serialize(kind: str, module, card: dict | None = None) -> bytes:
    buf = io.BytesIO()
    if kind in models.TORCH_KINDS:
        import torch  # noqa: PLC0415

        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        # plain containers only, so torch.load(weights_only=True) reads the card too
        torch.save({"format": WEIGHTS_FORMAT, "card": card or {}, "state_dict": state}, buf)
    else:  # plain arrays, never a pickle (see models.forest)
        return forest.dump_forest(module.estimator if hasattr(module, "estimator") else module)
    return buf.getvalue()


def rebuild(record: dict):
    """The module/estimator from a record's config and weights, checked; raises ModelError."""
    ref = f"{record['name']}@{record['version']} (id {record['model_id']})"
    weights = record.get("weights")
    if weights is None:
        raise ModelError(f"model {ref} has no weights stored")
    sha = hashlib.sha256(weights).hexdigest()
    if sha != record.get("weights_sha256"):
        raise ModelError(f"model {ref}: weights are corrupt (sha256 {sha[:12]}... does not match "
                         f"the recorded {str(record.get('weights_sha256'))[:12]}...)")
    kind = record["kind"]
    values = None
    try:
        members = ensemble.spec(record.get("hyperparams"))
        if kind in models.TORCH_KINDS:   # measured on torch's meta device before the real build
            values = bounds.model_values(kind, record["config"], (
                (lambda k, c: ensemble.Members.build(k, c, members)) if members is not None
                else models.build))
        if members is not None and members.two_stage and kind not in models.TORCH_KINDS:
            raise ValueError(f"a two-stage {kind} is not supported (torch kinds only)")
        module = (ensemble.Members.build(kind, record["config"], members)
                  if members is not None and kind in models.TORCH_KINDS
                  else models.build(kind, record["config"], seed=record.get("seed") or 0))
    except bounds.BoundsError as e:
        raise ModelError(f"model {ref}: {e}") from None
    except (ValueError, TypeError) as e:
        raise ModelError(f"model {ref}: stored config does not build a {kind}: {e}") from None
    if kind in models.TORCH_KINDS:
        import torch  # noqa: PLC0415

        try:
            bounds.check_weights_blob(weights, values, ref)
        except bounds.BoundsError as e:
            raise ModelError(str(e)) from None
        try:
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 (any unpickling failure means unreadable weights)
            raise ModelError(f"model {ref}: weights are not a readable torch state_dict: {e}") from None
        state = state_dict_of(state)
        check_state(ref, kind, module.state_dict(), state)
        module.load_state_dict(state)
        module.eval()
        return module
    try:
        loaded = forest.load_forest(weights, module.config, seed=record.get("seed") or 0)
        n_trees = len(loaded.estimator.estimators_)
        if members is not None and members.k != n_trees:   # the trees are the members
            raise ModelError(f"model {ref}: records {members.k} members, its forest has {n_trees} trees")
        return loaded
    except forest.LegacyPickleError as e:
        raise ModelError(f"model {ref}: {e}; retrain it, or if you trust where this store came "
                         f"from convert it with `matstore models convert "
                         f"{record['name']}@{record['version']} --trust`") from None
    except forest.ForestFormatError as e:
        raise ModelError(f"model {ref}: {e}") from None


def state_dict_of(saved: Any) -> Any:
    """The state_dict inside torch weights: a card + state_dict (WEIGHTS_FORMAT) or, as saved
    before model cards, the plain state_dict."""
    if isinstance(saved, dict) and saved.get("format") == WEIGHTS_FORMAT and "state_dict" in saved:
        return saved["state_dict"]
    return saved


def check_state(ref: str, kind: str, expected: dict, got: Any) -> None:
    if not isinstance(got, dict):
        raise ModelError(f"model {ref}: weights are a {type(got).__name__}, not a state_dict")
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        raise ModelError(f"model {ref}: weights do not fit the {kind} config: missing "
                         f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                         f"{extra[:5]}{'...' if len(extra) > 5 else ''}")
    for k, v in expected.items():
        if tuple(got[k].shape) != tuple(v.shape):
            raise ModelError(f"model {ref}: weight {k} has shape {tuple(got[k].shape)}, the "
                             f"{kind} config needs {tuple(v.shape)}")
