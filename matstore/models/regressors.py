"""The family the torch property regressors share (cnn, elemnet, attention): fit with early
stopping on the validation MAE, or as a composite (K members and/or two stages, models.composite);
predict in fixed-shape batches. Each kind's module registers a subclass (a few lines)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import loops
from .ensemble import MAX_MEMBERS, Members, Spec, clamp
from .errors import ModelConfigError
from .family import FitData, FitResult, TorchFamily


def fit_regressor(module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                  y_val: np.ndarray, *, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
                  patience: int = 20, loss: str = "l1", optimizer: str = "adam",
                  weight_decay: float = 0.0, schedule: str = "plateau", max_steps: int | None = None,
                  device=None, seed: int = 0, progress: bool = True, label: str = "train") -> loops.History:
    """Fit a regressor (CNN/ElemNet: fits its scaling buffers first); keeps the best val-MAE state.

    schedule: "plateau" halves the learning rate when val MAE stalls; "cosine" anneals it to 0
    over ``epochs`` (a fixed budget: pair it with a patience >= epochs)."""
    device = loops.resolve_device(device)
    torch.manual_seed(seed)
    module.fit_scaling(x_train, y_train)  # min-max inputs where the module asks (CNN, Magpie DNN)
    module.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    loss_fn = torch.nn.L1Loss() if loss == "l1" else torch.nn.MSELoss()
    opt = loops.optimizer(optimizer, module.parameters(), lr, weight_decay)
    sched = loops.scheduler(opt, schedule, epochs, patience)
    return loops.fit_loop(module, len(xt), lambda idx: loss_fn(module(xt[idx]), yt[idx]),
                          lambda: float((loops.eval_in_batches(module, xv) - yv).abs().mean()),
                          opt=opt, sched=sched, epochs=epochs, batch_size=batch_size,
                          patience=patience, max_steps=max_steps, seed=seed, device=device,
                          progress=progress, label=label, shown="loss")


def loop_args(hp: dict) -> dict:
    """The preset hyperparameters fit_regressor takes."""
    return dict(epochs=hp["epochs"], batch_size=hp["batch_size"], lr=hp["lr"], patience=hp["patience"],
                optimizer=hp.get("optimizer", "adam"), weight_decay=hp.get("weight_decay", 0.0),
                schedule=hp.get("schedule", "plateau"))


class RegressorFamily(TorchFamily):
    """A torch network mapping a featurizer's vector (or matrix) to one property value."""

    predictor = True

    def fit_config(self, config, x, members=None):
        return {**config, "n_inputs": int(x.shape[1])}

    def members_spec(self, k, two_stage, seeds, what):
        if k > MAX_MEMBERS:
            raise ModelConfigError(f"--ensemble {k}: at most {MAX_MEMBERS} members")
        return Spec(k, seeds, two_stage)

    def fit(self, module, data: FitData) -> FitResult:
        from . import composite  # noqa: PLC0415

        x, y, sp, hp = data.x, data.y, data.split, data.hyper
        if data.members is not None:   # K networks and/or two stages in one version
            module, metrics, scale = composite.fit(self.name, data.config, x, y, sp, hp, data.members,
                                                   data.property, device=data.device,
                                                   max_steps=data.max_steps, progress=data.progress,
                                                   label=data.label)
            return FitResult(module, metrics, dataclasses.replace(data.members, std_scale=scale))
        hist = fit_regressor(module, x[sp.train], y[sp.train], x[sp.val], y[sp.val],
                             loss=hp.get("loss", "l1"), max_steps=data.max_steps, device=data.device,
                             seed=data.seed, progress=data.progress, label=data.label, **loop_args(hp))
        metrics = {role: loops.regression_metrics(
                       y[idx], clamp(data.property, loops.predict_module(module, x[idx], data.device)))
                   for role, idx in (("val", sp.val), ("test", sp.test))}
        metrics["history"] = hist.to_dict()
        return FitResult(module, metrics)

    def load(self, weights, record, members, ref):
        from .torch_weights import load_torch  # noqa: PLC0415

        module = (Members.build(self.name, record["config"], members) if members is not None
                  else self.build(record["config"], record.get("seed") or 0))
        return load_torch(module, weights, ref, self.name)

    def member_outputs(self, module, x, members, device, batch_size=None):
        out = loops.predict_module(module, x, device, batch_size)
        return out.reshape(len(x), members.k, 2 if members.two_stage else 1)
