"""Training from SQL selections of the store into registered model versions.

``train(store, "cnn-fe", epochs=50)`` runs: selection -> compositions (+ ground-state targets of
one source: ``target_source``, default the store's one DFT source with the property) ->
features -> seeded train/val/test split -> fit with early stopping -> test metrics -> one
``model_versions`` row (weights, config, hyperparameters with the target's source, kind and level
of theory, SQL, row count, data hash, split) and the
split's composition ids in ``composition_sets`` as ``<name>@<version>/<role>``.
The store is only opened to read the selection and, at the end, in one short write transaction.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from .. import models
from ..errors import MatstoreError
from ..models.ensemble import clamp
from ..registry import ModelVersion, save_model
from ..options import at_least_one
from ..store import Store
from . import data, presets
from .fit import (autoencoder_metrics, fit_autoencoder, fit_regressor, fit_transformer, fit_wgan,
                  regression_metrics, resolve_device)
from .sample_metrics import composition_metrics, generation_metrics

__all__ = ["train", "presets", "PRESETS", "TrainingError", "LowDecodableWarning", "LOW_DECODABLE_PCT"]
PRESETS = presets.PRESETS
# A GAN whose evaluation samples decode below this share gets a LowDecodableWarning: its
# generate runs would store few or no compositions.
LOW_DECODABLE_PCT = 50.0


class LowDecodableWarning(UserWarning):
    """A trained GAN whose samples, or an autoencoder whose reconstructions, mostly decode to no composition."""


def _onehot(batch) -> tuple[np.ndarray, np.ndarray]:
    from ..features import onehot  # noqa: PLC0415

    maps, ok = onehot.encode(batch)
    return np.asarray(maps, np.float32), np.asarray(ok, bool)


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
    training.composite). ``valid_only`` (generators; default: the preset's) keeps only the
    selected compositions that are charge-neutral and electronegativity-balanced under the
    store's default checker (validated first), as MatGAN's GAN-ICSD-filter was trained."""
    p = presets.get(preset_name)
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
    max_rows = at_least_one("train: max_rows", max_rows, allow_none=True)
    max_steps = at_least_one("train: max_steps", max_steps, allow_none=True)
    members = _members_spec(p, ensemble, two_stage, seed)   # refused before any data is read
    valid_only = p.valid_only if valid_only is None else bool(valid_only)
    if valid_only and p.kind not in models.GENERATIVE_KINDS:
        raise presets.PresetError(f"preset {p.name} ({p.kind}): --valid-only is for generators "
                                  f"(it filters what a generator learns to imitate)")
    dev = resolve_device(device) if p.kind in models.TORCH_KINDS else None
    selection = (on or p.selection).strip().rstrip(";")
    several = isinstance(target_source, (list, tuple)) and len(target_source) > 1
    if isinstance(target_source, (list, tuple)) and not several:
        target_source = target_source[0] if target_source else None
    targets = data.target_sources(store, p.property, target_source) if several and p.property else None
    target = (targets[0] if targets else data.target_source(store, p.property, target_source or p.target_source)
              if p.property else None)
    ds = data.load(store, selection, p.property, max_rows=max_rows, seed=seed,
                   source=tuple(t.source for t in targets) if targets else target.source if target else None)
    n_dropped = 0
    validity = _keep_valid(store, ds, progress) if valid_only else None
    if validity is not None:
        ds = validity.pop("dataset")
    if p.kind in models.GENERATIVE_KINDS:
        x, ok = _onehot(ds.batch)   # every generator learns the rows the 8x85 encoding holds
        if models.KINDS[p.kind].inputs == "tokens":
            tokens, ok_t = models.build(p.kind, _config(p, x, config)).encode(ds.batch.z, ds.batch.counts)
            x, ok = tokens, ok & ok_t
        n_dropped = int((~ok).sum())
        ds, x = ds.subset(np.flatnonzero(ok)), x[ok]
    else:
        from .. import features  # noqa: PLC0415

        ok = np.asarray(features.get(p.featurizer).encodable(ds.batch), bool)
        n_dropped = int((~ok).sum())
        ds = ds.subset(np.flatnonzero(ok))
        x = models.featurize(p.kind, p.featurizer, ds.batch)
    fractions = tuple(fractions or p.fractions)
    sp = data.split(len(ds), seed, fractions)
    cfg = models.config_dict(models.make_config(p.kind, _config(p, x, config)))
    if members is not None and p.kind == "rf":   # --ensemble K of a forest: K trees
        cfg["n_estimators"] = members.k
    if p.kind in models.TORCH_KINDS:  # initial weights from the seed, not the process's RNG state
        import torch  # noqa: PLC0415

        torch.manual_seed(seed)
    module = models.build(p.kind, cfg, seed=seed)
    if p.kind == "wgan" and hp.get("output_bias"):
        _init_output_bias(module, float(hp["output_bias"]))
    t0 = time.perf_counter()
    common = dict(device=dev, seed=seed, progress=progress, label=f"train {name or p.name}")
    metrics: dict = {}
    if members is not None and p.kind != "rf":   # K networks and/or two stages in one version
        from . import composite  # noqa: PLC0415

        module, metrics, scale = composite.fit(p.kind, cfg, x, ds.y, sp, hp, members, p.property,
                                               device=dev, max_steps=max_steps, progress=progress,
                                               label=f"train {name or p.name}")
        members = dataclasses.replace(members, std_scale=scale)
    elif p.kind == "rf":
        if "n_jobs" in hp:
            module.estimator.set_params(n_jobs=hp["n_jobs"])
        module.fit(x[sp.train], ds.y[sp.train])
        if members is not None:   # the trees as members: mean, spread and its calibration
            from . import composite  # noqa: PLC0415

            trees = {role: module.predict_trees(x[idx])[..., None]
                     for role, idx in (("val", sp.val), ("test", sp.test))}
            scale = composite.fit_std_scale(ds.y[sp.val], trees["val"], p.property, False)
            members = dataclasses.replace(members, std_scale=scale, seeds=tuple(
                int(t.random_state) for t in module.estimator.estimators_))
            metrics["std_scale"] = scale
            for role, idx in (("val", sp.val), ("test", sp.test)):
                metrics[role] = composite.composite_metrics(ds.y[idx], trees[role], p.property,
                                                            False, std_scale=scale)
        else:
            metrics["val"] = regression_metrics(ds.y[sp.val], clamp(p.property, module.predict(x[sp.val])))
            metrics["test"] = regression_metrics(ds.y[sp.test], clamp(p.property, module.predict(x[sp.test])))
    elif p.kind in ("cnn", "elemnet", "attention"):
        hist = fit_regressor(module, x[sp.train], ds.y[sp.train], x[sp.val], ds.y[sp.val],
                             epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"],
                             patience=hp["patience"], loss=hp.get("loss", "l1"),
                             optimizer=hp.get("optimizer", "adam"),
                             weight_decay=hp.get("weight_decay", 0.0),
                             schedule=hp.get("schedule", "plateau"), max_steps=max_steps, **common)
        from ..registry import predict_module  # noqa: PLC0415

        for role, idx in (("val", sp.val), ("test", sp.test)):
            metrics[role] = regression_metrics(ds.y[idx], clamp(p.property, predict_module(module, x[idx], dev)))
        metrics["history"] = hist.to_dict()
    elif p.kind == "autoencoder":
        hist = fit_autoencoder(module, x[sp.train], x[sp.val], epochs=hp["epochs"],
                               batch_size=hp["batch_size"], lr=hp["lr"], patience=hp["patience"],
                               max_steps=max_steps, **common)
        metrics["train"] = autoencoder_metrics(module, x[sp.train], dev)
        metrics["test"] = autoencoder_metrics(module, x[sp.test], dev)
        metrics["history"] = hist.to_dict()
    elif p.kind == "transformer":
        hist = fit_transformer(module, x[sp.train], x[sp.val], epochs=hp["epochs"],
                               batch_size=hp["batch_size"], lr=hp["lr"], patience=hp["patience"],
                               weight_decay=hp.get("weight_decay", 0.0), threads=hp.get("threads"),
                               max_steps=max_steps, **common)
        import torch  # noqa: PLC0415

        z, counts = module.sample(int(hp["n_eval_samples"]), torch.Generator(device=dev).manual_seed(seed), dev)
        known = store.query("SELECT composition_id FROM known")["composition_id"].to_numpy()
        metrics["sample"] = composition_metrics(z, counts, ds.batch.composition_id[sp.train],
                                                known_ids=known,
                                                leave_out_ids=np.concatenate([ds.batch.composition_id[sp.val],
                                                                              ds.batch.composition_id[sp.test]]))
        metrics["history"] = hist.to_dict()
    else:  # wgan
        hist = fit_wgan(module, x[sp.train], x[sp.val], epochs=hp["epochs"],
                        batch_size=hp["batch_size"], lr_g=hp["lr_g"], lr_d=hp["lr_d"],
                        n_critic=hp["n_critic"], gp_lambda=hp["gp_lambda"], clip=hp["clip"],
                        threads=hp.get("threads"), max_steps=max_steps, **common)
        import torch  # noqa: PLC0415

        samples = module.sample(int(hp["n_eval_samples"]), torch.Generator().manual_seed(seed), dev)
        known = store.query("SELECT composition_id FROM known")["composition_id"].to_numpy()
        metrics["sample"] = generation_metrics(samples.cpu().numpy(), ds.batch.composition_id[sp.train],
                                               known_ids=known,
                                               leave_out_ids=ds.batch.composition_id[sp.test])
        metrics["history"] = hist.to_dict()
    metrics["train_seconds"] = round(time.perf_counter() - t0, 3)
    check_finite_metrics(name or p.name, metrics)
    hyperparams = {"preset": p.name, "property": p.property, "featurizer": p.featurizer,
                   "max_rows": max_rows, "max_steps": max_steps,
                   **(target.to_dict() if target else {}), **hp,
                   **({"members": members.to_dict()} if members is not None else {})}
    if validity is not None:
        hyperparams["valid_only"] = validity
    if targets:  # several explicit sources (e.g. active-learning labels + base data), by priority
        hyperparams["target_source"] = "+".join(t.source for t in targets)
        hyperparams["target_sources"] = [t.to_dict() for t in targets]
    split = {**sp.to_dict(), "n_selected": ds.n_selected, "n_not_encodable": n_dropped,
             **({"n_not_valid": validity["n_not_valid"]} if validity is not None else {})}
    ids = ds.batch.composition_id
    # the query as run (selection + the target source's join) is what the version was trained on
    mv = save_model(store, name or p.name, p.kind, module, cfg, hyperparams, ds.query, len(ds),
                    ds.data_hash, split, metrics, str(dev) if dev is not None else "cpu", seed,
                    split_ids={"train": ids[sp.train], "val": ids[sp.val], "test": ids[sp.test]})
    if "sample" in metrics:   # saved all the same: it may be trained further or inspected
        warn_low_decodable(mv.ref, p.name, metrics["sample"])
    if p.kind == "autoencoder":
        warn_low_reconstruction(mv.ref, metrics)
    return mv


MAX_TREES = 5000


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


def _members_spec(p: presets.Preset, ensemble: int | None, two_stage: bool | None,
                  seed: int):
    """The composite a run makes (None: one model): K members seeded seed, seed+1, ...; refused
    for kinds and properties it does not fit."""
    from ..models.ensemble import MAX_MEMBERS, Spec  # noqa: PLC0415

    from .composite import TWO_STAGE_PROPERTIES  # noqa: PLC0415

    k = at_least_one("train: ensemble", ensemble, allow_none=True) or 1
    if k > MAX_MEMBERS and p.kind != "rf":
        raise presets.PresetError(f"--ensemble {k}: at most {MAX_MEMBERS} members")
    if k > MAX_TREES:   # a forest's members are its trees: cheap, but not without end
        raise presets.PresetError(f"--ensemble {k}: a forest takes at most {MAX_TREES:,} trees")
    two = p.two_stage if two_stage is None else bool(two_stage)
    if k == 1 and not two:
        return None
    what = f"--ensemble {k}" if k > 1 else "--two-stage"
    if p.property is None or p.kind not in models.PREDICTOR_KINDS:
        raise presets.PresetError(f"preset {p.name} ({p.kind}): {what} needs a property predictor "
                                  f"(kinds {', '.join(sorted(models.PREDICTOR_KINDS))})")
    if p.kind not in models.TORCH_KINDS:
        if two:
            raise presets.PresetError(f"preset {p.name} ({p.kind}): two-stage needs a torch kind "
                                      f"({', '.join(sorted(models.PREDICTOR_KINDS & models.TORCH_KINDS))})")
        # a forest: K trees are the members (their seeds are known once it is fit)
        return Spec(k, (), False, "bootstrap")
    if two and p.property not in TWO_STAGE_PROPERTIES:
        raise presets.PresetError(f"preset {p.name}: two-stage (metal classifier + regressor) is for "
                                  f"{', '.join(sorted(TWO_STAGE_PROPERTIES))}, not {p.property}")
    return Spec(k, tuple(seed + i for i in range(k)), two)


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
                  LowDecodableWarning, stacklevel=3)


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
                      f"train longer (--epochs)", LowDecodableWarning, stacklevel=3)


class TrainingError(MatstoreError, RuntimeError):
    """A training run that produced no usable model (it is not saved)."""


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


def _init_output_bias(gan, value: float) -> None:
    """Start the generator's last deconv bias at ``value``: sigmoid(-4) = 0.018 puts every cell of
    the fresh generator below the 0.2 decode threshold, near the maps' density (~4 set cells of
    680), instead of 0.5 (all 680 cells set); the GAN then learns to light cells up rather than
    to switch off nearly all of them, which it did not manage in minutes of CPU training."""
    import torch  # noqa: PLC0415

    last = [m for m in gan.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.bias.fill_(value)


def _config(p: presets.Preset, x: np.ndarray, overrides: dict | None) -> dict:
    cfg = models.config_dict(p.config())
    if p.kind in ("elemnet", "attention"):
        cfg["n_inputs"] = int(x.shape[1])
    elif p.kind == "cnn":
        cfg["n_properties"], cfg["n_stats"] = int(x.shape[1]), int(x.shape[2])
    return {**cfg, **(overrides or {})}
