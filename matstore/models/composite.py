"""Training composite predictors (matstore.models.ensemble), for the regressor families: K members and/or two stages.

Members differ by seed (``seeds = seed, seed+1, ...``: initial weights, minibatch order, dropout)
and all see the same training rows, as deep ensembles do (Lakshminarayanan et al. 2017): bootstrap
resamples would leave each member ~37% fewer distinct rows, which costs a network more accuracy
than it buys spread. Member 0 is trained exactly as the single model ``train`` makes with
the same seed (same initial weights, batches and schedule).

Two-stage (band gaps): per member, a classifier of the same kind (its output read as the metal
logit, trained with binary cross-entropy on "gap <= metal_gap", early-stopped on the validation
rows' cross-entropy) and a regressor trained and early-stopped on the non-metal rows only.

Metrics of a composite (val and test): the value's MAE/RMSE/R²; with K > 1 the calibration of its
std (fraction of rows with |error| <= 1 and 2 std: ~0.68 / 0.95 when well calibrated), after
scaling: the members' spread underestimates the error (measured: 39.5% of OQMD FE test errors
within 1 spread, K=5), so the reported std is the spread times ``std_scale``, fitted on the
validation rows (``fit_std_scale``; recalibration as in Kuleshov et al. 2018 / Levi et al. 2019,
reduced to one factor); the unscaled fractions are kept too; two-stage:
classification accuracy and ROC-AUC of p_metal, MAE on the non-metal rows. ``members`` lists each
member's seed, test MAE and training history summary.
"""

from __future__ import annotations

import math

import numpy as np

from . import ensemble, loops
from .ensemble import Members, Spec
from .errors import TrainingError
from .family import get
from .loops import regression_metrics
from .regressors import fit_regressor, loop_args

TWO_STAGE_PROPERTIES = frozenset({"band_gap"})   # where "metal" means a value of 0


def metal_labels(y: np.ndarray, metal_gap: float) -> np.ndarray:
    """1.0 where the gap is <= metal_gap (OQMD and MP store metals as exactly 0.0), else 0.0."""
    return (np.asarray(y, np.float64) <= metal_gap).astype(np.float32)


def fit_classifier(module, x_train, labels_train, x_val, labels_val, *, epochs, batch_size, lr,
                   patience, optimizer="adam", weight_decay=0.0, schedule="plateau",
                   max_steps=None, device=None, seed=0, progress=True, label="train"):
    """Fit a regressor module as a binary classifier: its output is the logit (target scaling set
    to the base rate's log-odds, scale 1, so the fresh network starts at the prior)."""
    import torch  # noqa: PLC0415

    device = loops.resolve_device(device)
    torch.manual_seed(seed)
    labels_train = np.asarray(labels_train, np.float32)
    if hasattr(module, "fit_scaling"):
        module.fit_scaling(x_train, labels_train)
    if hasattr(module, "y_mean"):
        rate = float(np.clip(labels_train.mean(), 1e-4, 1 - 1e-4))
        with torch.no_grad():
            module.y_mean.fill_(math.log(rate / (1 - rate)))
            module.y_std.fill_(1.0)
    module.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(labels_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(np.asarray(labels_val, np.float32), dtype=torch.float32, device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    opt = loops.optimizer(optimizer, module.parameters(), lr, weight_decay)
    sched = loops.scheduler(opt, schedule, epochs, patience)
    return loops.fit_loop(module, len(xt), lambda idx: loss_fn(module(xt[idx]).reshape(-1), yt[idx]),
                     lambda: float(loss_fn(loops.eval_in_batches(module, xv).reshape(-1), yv)),
                     opt=opt, sched=sched, epochs=epochs, batch_size=batch_size, patience=patience,
                     max_steps=max_steps, seed=seed, device=device, progress=progress, label=label,
                     shown="bce")


def _fresh(kind: str, cfg: dict, seed: int):
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)   # initial weights from the member's seed
    return get(kind).build(cfg, seed=seed)


def fit(kind: str, cfg: dict, x: np.ndarray, y: np.ndarray, sp, hp: dict, spec: Spec, prop: str,
        *, device, max_steps=None, progress=True, label="train") -> tuple[Members, dict]:
    """Train spec.k members (two-stage or not) on split sp of (x, y); -> (module, metrics)."""
    regs, clfs, members = [], [], []
    metal_gap = float(hp.get("metal_gap", 0.0))
    labels = metal_labels(y, metal_gap) if spec.two_stage else None
    for i, s in enumerate(spec.seeds):
        tag = f"{label} member {i + 1}/{spec.k}" if spec.k > 1 else label
        info: dict = {"seed": s}
        common = dict(device=device, seed=s, progress=progress, max_steps=max_steps)
        if spec.two_stage:
            clf = _fresh(kind, cfg, s)
            h = fit_classifier(clf, x[sp.train], labels[sp.train], x[sp.val], labels[sp.val],
                               label=f"{tag} classifier", **loop_args(hp), **common)
            info["classifier_history"] = _summary(h)
            clfs.append(clf)
            tr = sp.train[labels[sp.train] == 0]   # the regressor learns the non-metals' gaps
            va = sp.val[labels[sp.val] == 0]
            if len(tr) < 2 or len(va) < 1 or labels[sp.train].min() == labels[sp.train].max():
                raise TrainingError(f"{label}: a two-stage model needs metals (gap <= {metal_gap}) "
                                    f"and non-metals among the training and validation rows; got "
                                    f"{len(tr)} / {len(va)} non-metals of {len(sp.train)} / "
                                    f"{len(sp.val)} rows")
        else:
            tr, va = sp.train, sp.val
        reg = _fresh(kind, cfg, s)
        h = fit_regressor(reg, x[tr], y[tr], x[va], y[va], loss=hp.get("loss", "l1"),
                          label=f"{tag} regressor" if spec.two_stage else tag, **loop_args(hp), **common)
        info["history"] = _summary(h)
        regs.append(reg)
        members.append(info)
    module = Members(regs, clfs or None)
    module.eval()
    raws = {role: loops.predict_module(module, x[idx], device).reshape(len(idx), spec.k,
                                                                 2 if spec.two_stage else 1)
            for role, idx in (("val", sp.val), ("test", sp.test))}
    scale = fit_std_scale(y[sp.val], raws["val"], prop, spec.two_stage)
    metrics: dict = {"std_scale": scale}
    for role, idx in (("val", sp.val), ("test", sp.test)):
        raw = raws[role]
        metrics[role] = composite_metrics(y[idx], raw, prop, spec.two_stage, metal_gap, scale)
        if role == "test":
            vals, _ = ensemble.member_values(raw, prop, spec.two_stage)
            for info, col in zip(members, vals.T):
                info["test_mae"] = float(np.abs(col - np.asarray(y[idx], np.float64)).mean())
    metrics["members"] = members
    return module, metrics, scale


def _summary(h) -> dict:
    d = h.to_dict()
    return {k: d[k] for k in ("epochs_run", "best_epoch", "best_val", "steps", "seconds")}


ONE_SIGMA = 0.6827   # the share of a normal distribution within one standard deviation


def fit_std_scale(y: np.ndarray, raw: np.ndarray, prop: str, two_stage: bool) -> float:
    """The factor on the members' spread that makes it a calibrated std on these (validation)
    rows: the 68.27th percentile of |error| / spread, so that 68.27% of the rows fall within one
    std. (The Gaussian-likelihood factor, sqrt(mean(z^2)), is ruled by the heavy tail of the
    errors: measured on OQMD FE, K=5, it put 86.7% of test errors within one std.) Rows where
    every member agrees (spread 0, e.g. metals all members call metals) carry no scale
    information. 1.0 for one member or when no row has a spread."""
    if raw.shape[1] < 2:
        return 1.0
    out = ensemble.combine(raw, prop, two_stage)
    err = np.abs(np.asarray(y, np.float64) - out.value)
    ok = out.std > 0
    if not ok.any():
        return 1.0
    s = float(np.quantile(err[ok] / out.std[ok], ONE_SIGMA))
    return s if math.isfinite(s) and s > 0 else 1.0


def calibration(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict:
    """Fractions of rows whose |error| is within 1 and 2 standard deviations (std 0 counts only an
    exact hit), and the mean std."""
    err = np.abs(np.asarray(y, np.float64) - mean)
    return {"within_1sigma": float((err <= std).mean()), "within_2sigma": float((err <= 2 * std).mean()),
            "mean_std": float(std.mean())}


def composite_metrics(y: np.ndarray, raw: np.ndarray, prop: str, two_stage: bool,
                      metal_gap: float = 0.0, std_scale: float = 1.0) -> dict:
    """Metrics of a composite's raw (n, K, C) outputs against targets y (see the module docstring)."""
    y = np.asarray(y, np.float64)
    out = ensemble.combine(raw, prop, two_stage, std_scale)
    m = regression_metrics(y, out.value)
    if raw.shape[1] > 1:
        m.update(calibration(y, out.value, out.std))
        m.update({f"{k}_unscaled": v for k, v in
                  calibration(y, out.value, out.std / std_scale).items()})
    if two_stage:
        metal = metal_labels(y, metal_gap).astype(bool)
        nonmetal = ~metal
        m["accuracy"] = float(((out.p_metal >= ensemble.METAL_THRESHOLD) == metal).mean())
        m["metal_fraction"] = float(metal.mean())
        m["roc_auc"] = _roc_auc(metal, out.p_metal)
        m["n_nonmetal"] = int(nonmetal.sum())
        m["mae_nonmetal"] = (float(np.abs(out.value[nonmetal] - y[nonmetal]).mean())
                             if nonmetal.any() else None)
        r2 = regression_metrics(y[nonmetal], out.value[nonmetal])["r2"] if nonmetal.sum() > 1 else None
        m["r2_nonmetal"] = r2 if r2 is not None and math.isfinite(r2) else None
    return m


def _roc_auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    """ROC-AUC of score for truth; None where the rows hold one class only (undefined)."""
    if truth.all() or not truth.any():
        return None
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    return float(roc_auc_score(truth, score))
