"""What every family's training shares (public; the families' ``fit`` build on it): the device,
a rich progress bar, the epoch loop with early stopping (``fit_loop``), optimizers and schedules,
batched evaluation, regression metrics, reproducible torch settings, and ``predict_module`` (a
regressor over an array in fixed-shape batches). Same code on cpu and cuda.

Every loop is seeded (torch.manual_seed + a torch.Generator for shuffling), shows a rich progress
bar with the live loss, and keeps the best validation state (early stopping with ``patience``
epochs). GANs have no validation loss that ranks generators, so they train for the epochs asked
and report the critic's Wasserstein estimate on the validation rows per epoch instead.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import progress
from .errors import ModelConfigError


def resolve_device(device: str | None = None) -> torch.device:
    """cuda when available unless told otherwise; checked by devices.resolve_device."""
    from ..devices import resolve_device as resolve  # noqa: PLC0415

    return torch.device(resolve(device))


@contextmanager
def progress_bar(total: int, label: str, enabled: bool):
    if not enabled:
        yield None
        return
    with progress.bar(True, "epochs") as p:
        yield p, p.add_task(label, total=total), label


def tick(bar, info: str) -> None:
    if bar is not None:
        p, task, label = bar
        p.update(task, advance=1, description=f"{label} {info}".rstrip())


@dataclass
class History:
    epochs_run: int = 0
    best_epoch: int = 0
    best_val: float = math.inf
    steps: int = 0
    seconds: float = 0.0
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "best_val": None if math.isinf(self.best_val) else self.best_val,
                "steps": self.steps, "seconds": round(self.seconds, 3),
                "train_loss": [round(v, 6) for v in self.train_loss],
                "val_loss": [round(v, 6) for v in self.val_loss]}


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R² (thesis Eqs. 4-3..4-5)."""
    y = np.asarray(y, np.float64)
    pred = np.asarray(pred, np.float64)
    err = pred - y
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
            "n": int(len(y))}


def optimizer(name: str, params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999)):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ModelConfigError(f"unknown optimizer {name!r} (adam, adamw, rmsprop)")


def scheduler(opt, schedule: str, epochs: int, patience: int):
    """"plateau" halves the learning rate when the validation metric stalls (patience // 3
    epochs, at least 2); "cosine" anneals it to 0 over ``epochs``."""
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(2, patience // 3))
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    raise ModelConfigError(f"schedule {schedule!r}: expected 'plateau' or 'cosine'")


def batches(n: int, batch_size: int, gen: torch.Generator, device) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen).to(device)
    return list(perm.split(batch_size))


def eval_in_batches(module, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return torch.cat([module(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def fit_loop(module, n_train: int, batch_loss, val_metric, *, opt, epochs: int, batch_size: int,
              patience: int, max_steps: int | None, seed: int, device, progress: bool, label: str,
              shown: str, sched=None) -> History:
    """The epoch loop regressors and the autoencoder share: seeded minibatches, early stopping on
    val_metric() (lower is better), keeping the best state. batch_loss(idx) returns the loss."""
    gen = torch.Generator().manual_seed(seed)
    hist, best, t0, wait = History(), None, time.perf_counter(), 0
    with progress_bar(epochs, label, progress) as bar:
        for epoch in range(1, epochs + 1):
            module.train()
            total, seen = 0.0, 0
            for idx in batches(n_train, batch_size, gen, device):
                if len(idx) < 2:  # batch norm needs two rows
                    continue
                opt.zero_grad(set_to_none=True)
                loss = batch_loss(idx)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                hist.steps += 1
                if max_steps is not None and hist.steps >= max_steps:
                    break
            val = val_metric()
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(val)
            elif sched is not None:
                sched.step()
            hist.train_loss.append(total / max(seen, 1))
            hist.val_loss.append(val)
            hist.epochs_run = epoch
            if val < hist.best_val:
                hist.best_val, hist.best_epoch, wait = val, epoch, 0
                best = copy.deepcopy(module.state_dict())
            else:
                wait += 1
            tick(bar, f"{shown} {hist.train_loss[-1]:.4f}  val {val:.4f}  best {hist.best_val:.4f}")
            if wait >= patience or (max_steps is not None and hist.steps >= max_steps):
                break
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


DEFAULT_TRAIN_THREADS = 1


@contextmanager
def reproducible(threads: int | None = DEFAULT_TRAIN_THREADS):
    """Pin what makes a torch training run depend on the machine's state rather than its seed.

    CPU convolution backward passes split their reductions by the intra-op thread count, so the
    same seed gives different weights with 1 or 2 threads, and a GAN turns those last-bit
    differences into a different model. Inside: a fixed thread count (``None`` keeps the current
    one), deterministic algorithms (warn-only: an op without a deterministic kernel warns rather
    than fails) and deterministic cuDNN; all restored on exit.
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_cudnn = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        if threads is not None:
            if int(threads) < 1:
                raise ModelConfigError(f"threads must be at least 1, got {threads}")
            torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old_cudnn


# Rows per forward pass. Every pass has exactly this many rows (the last one zero-padded): BLAS
# and conv kernels reduce in an order that depends on the batch's shape, so a row's value would
# otherwise change (by ~1e-8) with the rows that share its batch - and a resumed or separate
# prediction run would not equal a fused, uninterrupted one.
PREDICT_ROWS = {"cpu": 1024, "cuda": 16384}   # the GPU wants bigger passes


def predict_module(module, x: np.ndarray, device, batch_size: int | None = None) -> np.ndarray:
    """Run a regressor module over x in fixed-shape batches on device; same path for cpu and cuda.
    A row's value depends only on that row (and batch_size), not on which rows come with it.

    A module with ``bucket_keys(x)`` and ``forward_bucket(x, key)`` (attention: a row's element
    count) gets the rows of each key together, each pass still of the fixed shape (rows, key),
    so a row is computed at its own length instead of the longest one's."""
    rows = int(batch_size or PREDICT_ROWS["cuda" if str(device).startswith("cuda") else "cpu"])
    module.eval()
    module.to(device)
    keys_of = getattr(module, "bucket_keys", None)
    keys = keys_of(x) if keys_of is not None else None
    if keys is None:
        return _fixed_passes(module, x, rows, device)
    parts = []
    for key in np.unique(keys):
        sel = np.flatnonzero(keys == key)
        parts.append((sel, _fixed_passes(lambda xb, k=int(key): module.forward_bucket(xb, k), x[sel], rows, device)))
    if not parts:
        return np.zeros(0, dtype=np.float32)
    out = np.empty((len(x),) + parts[0][1].shape[1:], dtype=np.float32)
    for sel, values in parts:
        out[sel] = values
    return out


def _fixed_passes(forward, x: np.ndarray, rows: int, device) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), rows):
            part = np.asarray(x[i:i + rows], dtype=np.float32)
            m = len(part)
            if m < rows:
                part = np.concatenate([part, np.zeros((rows - m,) + part.shape[1:], np.float32)])
            xb = torch.as_tensor(part, device=device)
            out.append(forward(xb)[:m].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
