"""Training from SQL selections of the store into registered model versions.

``train(store, "cnn-fe", epochs=50)`` runs: selection -> compositions (+ ground-state targets of
one source: ``target_source``, default the store's one DFT source with the property) ->
the kind's encoding -> seeded train/val/test split -> the kind's fit (models.family) -> one
``model_versions`` row (weights, config, hyperparameters with the target's source, kind and level
of theory, SQL, row count, data hash, split) and the
split's composition ids in ``composition_sets`` as ``<name>@<version>/<role>``.
The store is only opened to read the selection and, at the end, in one short write transaction.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import models
from ..models.errors import TrainingError
from ..models.family import FitData
from ..models.loops import resolve_device
from ..option_checks import at_least_one
from ..registry import ModelVersion, save_model
from ..store import Store
from . import data, presets

__all__ = ["train", "presets", "PRESETS", "TrainingError", "LowDecodableWarning", "LOW_DECODABLE_PCT"]
PRESETS = presets.PRESETS
# A GAN whose evaluation samples decode below this share gets a LowDecodableWarning: its
# generate runs would store few or no compositions.
LOW_DECODABLE_PCT = 50.0


class LowDecodableWarning(UserWarning):
    """A trained GAN whose samples, or an autoencoder whose reconstructions, mostly decode to no composition."""


def train(store: Store, preset_name: str, on: str | None = None, epochs: int | None = None,
          device: str | None = None, seed: int = 0, *, max_rows: int | None = None,
          batch_size: int | None = None, name: str | None = None, max_steps: int | None = None,
          fractions: tuple[float, float, float] | None = None, config: dict | None = None,
          progress: bool = True, target_source: str | list[str] | None = None,
          ensemble: int | None = None, two_stage: bool | None = None, valid_only: bool | None = None,
          **hyper) -> ModelVersion:
    """Train a preset on the store's data and register the result. ``on`` replaces the preset's
    selection (any SQL returning composition_id); ``target_source`` names the source whose values
    a predictor learns (default: the preset's, else the store's one DFT source with the property;
    a list of sources: each composition's value from the first that has one, recorded as
    hyperparams target_sources);
    ``config`` overrides module config fields; other keyword arguments override the preset's
    hyperparameters (lr, patience, clip, ...). ``fractions`` (train, val, test) default to the
    preset's (0.8/0.1/0.1 unless it says otherwise). ``ensemble=K`` trains K members (seeds
    seed..seed+K-1) into one version whose predictions carry a std; ``two_stage`` (default: the
    preset's) makes a band-gap predictor a metal classifier + a non-metal regressor (see
    models.composite). ``valid_only`` (generators; default: the preset's) keeps only the
    selected compositions that are charge-neutral and electronegativity-balanced under the
    store's default checker (validated first), as MatGAN's GAN-ICSD-filter was trained.
    Steps: select -> encode (the kind's family) -> split -> ``family.fit`` -> save."""
    p = presets.get(preset_name)
    fam = models.get(p.kind)
    hp, max_rows, max_steps = _hyperparameters(p, epochs, batch_size, max_rows, max_steps, hyper,
                                               target_source)
    members = _members_spec(p, fam, ensemble, two_stage, seed)   # refused before any data is read
    valid_only = p.valid_only if valid_only is None else bool(valid_only)
    if valid_only and not fam.generator:
        raise presets.PresetError(f"preset {p.name} ({p.kind}): --valid-only is for generators "
                                  f"(it filters what a generator learns to imitate)")
    dev = resolve_device(device) if fam.torch else None
    targets = _targets(store, p, target_source)
    ds = data.load(store, (on or p.selection).strip().rstrip(";"), p.property, max_rows=max_rows,
                   seed=seed, source=(tuple(t.source for t in targets) if len(targets) > 1
                                      else targets[0].source if targets else None))
    validity = _keep_valid(store, ds, progress) if valid_only else None
    if validity is not None:
        ds = validity.pop("dataset")
    cfg = {**models.config_dict(p.config()), **(config or {})}
    x, ok = fam.encode(ds.batch, p.featurizer, cfg)
    ds = ds.subset(np.flatnonzero(ok))
    sp = data.split(len(ds), seed, tuple(fractions or p.fractions))
    cfg = models.config_dict(fam.make_config(fam.fit_config(cfg, x, members)))
    t0 = time.perf_counter()
    fitted = fam.fit(fam.fresh(cfg, seed), FitData(
        x, ds.y, sp, hp, cfg, p.property, members, ds.batch, dev, seed, max_steps, progress,
        f"train {name or p.name}", known_ids=lambda: _known_ids(store)))
    metrics = {**fitted.metrics, "train_seconds": round(time.perf_counter() - t0, 3)}
    check_finite_metrics(name or p.name, metrics)
    split = {**sp.to_dict(), "n_selected": ds.n_selected, "n_not_encodable": int((~ok).sum()),
             **({"n_not_valid": validity["n_not_valid"]} if validity is not None else {})}
    ids = ds.batch.composition_id
    # the query as run (selection + the target source's join) is what the version was trained on
    mv = save_model(store, name or p.name, p.kind, fitted.module, cfg,
                    _hyperparams(p, hp, max_rows, max_steps, targets, fitted.members, validity),
                    ds.query, len(ds), ds.data_hash, split, metrics, str(dev) if dev is not None else "cpu",
                    seed, split_ids={"train": ids[sp.train], "val": ids[sp.val], "test": ids[sp.test]})
    warn_low_quality(mv.ref, p.name, fam, metrics)   # saved all the same: it may be trained further
    return mv


def _hyperparameters(p: presets.Preset, epochs, batch_size, max_rows, max_steps, hyper: dict,
                     target_source) -> tuple[dict, int | None, int | None]:
    """The preset's hyperparameters with the run's overrides, checked."""
    if target_source is not None and p.property is None:
        raise data.TargetSourceError(f"preset {p.name} ({p.kind}) has no target property; choose its "
                                     f"compositions with --on instead of --target-source")
    unknown = set(hyper) - set(p.hyper) - presets.OPTIONAL_HYPER
    if unknown:
        raise presets.PresetError(f"preset {p.name} has no hyperparameter(s) {sorted(unknown)} "
                                  f"(it takes {sorted(p.hyper)})")
    hp = {**p.hyper, **{k: v for k, v in hyper.items() if v is not None}}
    if epochs is not None:
        hp["epochs"] = epochs
    if batch_size is not None:
        hp["batch_size"] = batch_size
    for k in ("epochs", "batch_size"):
        if k in hp and int(hp[k]) < 1:
            raise presets.PresetError(f"{k} must be at least 1, got {hp[k]}")
    return (hp, at_least_one("train: max_rows", max_rows, allow_none=True),
            at_least_one("train: max_steps", max_steps, allow_none=True))


def _targets(store: Store, p: presets.Preset, target_source) -> list:
    """The target sources a predictor learns from, by priority ([] for a generator)."""
    if not p.property:
        return []
    if isinstance(target_source, (list, tuple)):
        if len(target_source) > 1:
            return data.target_sources(store, p.property, target_source)
        target_source = target_source[0] if target_source else None
    return [data.target_source(store, p.property, target_source or p.target_source)]


def _hyperparams(p: presets.Preset, hp: dict, max_rows, max_steps, targets: list, members,
                 validity: dict | None) -> dict:
    """What a version records of how it was trained (model_versions.hyperparams)."""
    out = {"preset": p.name, "property": p.property, "featurizer": p.featurizer,
           "max_rows": max_rows, "max_steps": max_steps,
           **(targets[0].to_dict() if targets else {}), **hp,
           **({"members": members.to_dict()} if members is not None else {})}
    if validity is not None:
        out["valid_only"] = validity
    if len(targets) > 1:  # several explicit sources (e.g. active-learning labels + base data), by priority
        out["target_source"] = "+".join(t.source for t in targets)
        out["target_sources"] = [t.to_dict() for t in targets]
    return out


def _known_ids(store: Store) -> np.ndarray:
    return store.query("SELECT composition_id FROM known")["composition_id"].to_numpy()


def _keep_valid(store: Store, ds, progress: bool) -> dict:
    """The rows of ds that are charge-neutral and electronegativity-balanced under the default
    oxidation-state set (validity rows written for those that lack them): {dataset, checker
    version, rows kept and dropped}. Rows smact cannot judge (NULL flags) are dropped."""
    from ..featurize import validate_store  # noqa: PLC0415

    ids = ds.batch.composition_id.astype(np.int64).tolist()
    res = validate_store(store, where="composition_id IN (SELECT unnest($ids::BIGINT[]))",
                         params={"ids": ids}, progress=progress)
    ok = store.query("SELECT composition_id FROM validity WHERE checker_version = ? AND charge_neutral "
                     "AND electronegativity_balanced AND composition_id IN (SELECT unnest(?::BIGINT[]))",
                     [res.version, ids])["composition_id"].to_numpy()
    keep = np.flatnonzero(np.isin(ds.batch.composition_id, ok))
    if not len(keep):
        raise data.SelectionError(f"--valid-only: none of the {len(ids):,} selected compositions is "
                                  f"charge-neutral and electronegativity-balanced ({res.version})")
    return {"dataset": ds.subset(keep), "checker_version": res.version, "n_valid": int(len(keep)),
            "n_not_valid": int(len(ids) - len(keep)), "rule": "charge_neutral AND electronegativity_balanced"}


def _members_spec(p: presets.Preset, fam, ensemble: int | None, two_stage: bool | None, seed: int):
    """The composite a run makes (None: one model): K members seeded seed, seed+1, ...; refused
    for kinds (the family says) and properties it does not fit."""
    from ..models.composite import TWO_STAGE_PROPERTIES  # noqa: PLC0415

    k = at_least_one("train: ensemble", ensemble, allow_none=True) or 1
    two = p.two_stage if two_stage is None else bool(two_stage)
    if k == 1 and not two:
        return None
    what = f"--ensemble {k}" if k > 1 else "--two-stage"
    if p.property is None or not fam.predictor:
        raise presets.PresetError(f"preset {p.name} ({p.kind}): {what} needs a property predictor "
                                  f"(kinds {', '.join(sorted(models.PREDICTOR_KINDS))})")
    try:
        spec = fam.members_spec(k, two, tuple(seed + i for i in range(k)), what)
    except models.ModelConfigError as e:
        raise presets.PresetError(f"preset {p.name} ({p.kind}): {e}") from None
    if two and p.property not in TWO_STAGE_PROPERTIES:
        raise presets.PresetError(f"preset {p.name}: two-stage (metal classifier + regressor) is for "
                                  f"{', '.join(sorted(TWO_STAGE_PROPERTIES))}, not {p.property}")
    return spec


def warn_low_quality(name: str, preset: str, fam, metrics: dict) -> None:
    """A generator whose samples, or an autoencoder whose rows, mostly decode to no composition."""
    if "sample" in metrics:
        warn_low_decodable(name, preset, metrics["sample"])
    if fam.latent_space:
        warn_low_reconstruction(name, metrics)


def warn_low_decodable(name: str, preset: str, sample: dict) -> None:
    """Warn when fewer than LOW_DECODABLE_PCT % of a GAN's evaluation samples decode."""
    pct = float(sample.get("decodable_pct", 0.0))
    if pct >= LOW_DECODABLE_PCT:
        return
    import warnings  # noqa: PLC0415

    small = f"{preset}-small" if f"{preset}-small" in PRESETS else "gan-mp-small"
    hint = ("train longer (--epochs)" if preset.endswith("-small")
            else f"try --model {small} (the demo's recipe), or train longer")
    warnings.warn(f"train {name}: only {pct:.1f}% of {sample.get('n_samples', 0):,} samples decode to a "
                  f"composition (< {LOW_DECODABLE_PCT:.0f}%): generate would store few or none; {hint}",
                  LowDecodableWarning, stacklevel=4)


def warn_low_reconstruction(name: str, metrics: dict) -> None:
    """Warn when fewer than LOW_DECODABLE_PCT % of an autoencoder's train or test rows decode back."""
    low = {k: float(metrics[k]["decodable_pct"]) for k in ("train", "test")
           if isinstance(metrics.get(k), dict) and metrics[k].get("decodable_pct") is not None
           and float(metrics[k]["decodable_pct"]) < LOW_DECODABLE_PCT}
    if low:
        import warnings  # noqa: PLC0415

        got = ", ".join(f"{v:.1f}% of {k}" for k, v in low.items())
        warnings.warn(f"train {name}: only {got} rows decode back to their composition "
                      f"(< {LOW_DECODABLE_PCT:.0f}%): its latents and decodes are not to be trusted; "
                      f"train longer (--epochs)", LowDecodableWarning, stacklevel=4)


def check_finite_metrics(name: str, metrics: dict) -> None:
    """Refuse to save a model whose evaluation is not finite (a diverged run: train --lr 1e10
    gives NaN weights and NaN MAE; an inf target gives an Infinity MAE). Every number of the
    evaluation and the last loss of each history must be finite; R² alone may be NaN (undefined
    when the targets are constant)."""
    bad = []
    for role, m in metrics.items():
        if role == "history" and isinstance(m, dict):
            for k in ("train_loss", "val_loss"):
                if m.get(k) and not math.isfinite(m[k][-1]):
                    bad.append(f"history.{k}[-1]={m[k][-1]}")
        elif isinstance(m, dict):
            bad += [f"{role}.{k}={v}" for k, v in m.items()
                    if isinstance(v, float) and not math.isfinite(v) and not (k == "r2" and math.isnan(v))]
    if bad:
        raise TrainingError(f"train {name}: metrics are not finite ({', '.join(bad[:4])}); the run "
                            f"diverged or the data holds non-finite values; nothing was saved "
                            f"(try a smaller --lr)")
