"""Training loops (regressors, autoencoder, WGAN, transformer) and regression metrics. Same code on
cpu and cuda. (What a generator's samples are worth: training.sample_metrics.)

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
from ..models.autoencoder import decodable, dice_loss
from ..models.errors import ModelConfigError


def resolve_device(device: str | None = None) -> torch.device:
    """cuda when available unless told otherwise; checked by devices.resolve_device."""
    from ..devices import resolve_device as resolve  # noqa: PLC0415

    return torch.device(resolve(device))


@contextmanager
def _progress(total: int, label: str, enabled: bool):
    if not enabled:
        yield None
        return
    with progress.bar(True, "epochs") as p:
        yield p, p.add_task(label, total=total), label


def _tick(bar, info: str) -> None:
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


def _optimizer(name: str, params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999)):
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


def _batches(n: int, batch_size: int, gen: torch.Generator, device) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen).to(device)
    return list(perm.split(batch_size))


def _eval_in_batches(module, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    module.eval()
    with torch.no_grad():
        return torch.cat([module(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _fit_loop(module, n_train: int, batch_loss, val_metric, *, opt, epochs: int, batch_size: int,
              patience: int, max_steps: int | None, seed: int, device, progress: bool, label: str,
              shown: str, sched=None) -> History:
    """The epoch loop regressors and the autoencoder share: seeded minibatches, early stopping on
    val_metric() (lower is better), keeping the best state. batch_loss(idx) returns the loss."""
    gen = torch.Generator().manual_seed(seed)
    hist, best, t0, wait = History(), None, time.perf_counter(), 0
    with _progress(epochs, label, progress) as bar:
        for epoch in range(1, epochs + 1):
            module.train()
            total, seen = 0.0, 0
            for idx in _batches(n_train, batch_size, gen, device):
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
            _tick(bar, f"{shown} {hist.train_loss[-1]:.4f}  val {val:.4f}  best {hist.best_val:.4f}")
            if wait >= patience or (max_steps is not None and hist.steps >= max_steps):
                break
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def fit_regressor(module, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                  y_val: np.ndarray, *, epochs: int = 100, batch_size: int = 256, lr: float = 1e-3,
                  patience: int = 20, loss: str = "l1", optimizer: str = "adam",
                  weight_decay: float = 0.0, schedule: str = "plateau", max_steps: int | None = None,
                  device=None, seed: int = 0, progress: bool = True, label: str = "train") -> History:
    """Fit a regressor (CNN/ElemNet: fits its scaling buffers first); keeps the best val-MAE state.

    schedule: "plateau" halves the learning rate when val MAE stalls; "cosine" anneals it to 0
    over ``epochs`` (a fixed budget: pair it with a patience >= epochs)."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    module.fit_scaling(x_train, y_train)  # min-max inputs where the module asks (CNN, Magpie DNN)
    module.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    loss_fn = torch.nn.L1Loss() if loss == "l1" else torch.nn.MSELoss()
    opt = _optimizer(optimizer, module.parameters(), lr, weight_decay)
    sched = scheduler(opt, schedule, epochs, patience)
    return _fit_loop(module, len(xt), lambda idx: loss_fn(module(xt[idx]), yt[idx]),
                     lambda: float((_eval_in_batches(module, xv) - yv).abs().mean()),
                     opt=opt, sched=sched, epochs=epochs, batch_size=batch_size, patience=patience,
                     max_steps=max_steps, seed=seed, device=device, progress=progress, label=label,
                     shown="loss")


def fit_autoencoder(module, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int = 100,
                    batch_size: int = 1024, lr: float = 1e-3, patience: int = 20,
                    max_steps: int | None = None, device=None, seed: int = 0,
                    progress: bool = True, label: str = "train ae") -> History:
    """Negative-Dice training (thesis Eq. 3-3); keeps the state with the best validation loss."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    module.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    return _fit_loop(module, len(xt), lambda idx: dice_loss(module(xt[idx]), xt[idx]),
                     lambda: float(dice_loss(_eval_in_batches(module, xv), xv)),
                     opt=opt, epochs=epochs, batch_size=batch_size, patience=patience,
                     max_steps=max_steps, seed=seed, device=device, progress=progress, label=label,
                     shown="-dice")


def autoencoder_metrics(module, x: np.ndarray, device=None) -> dict[str, float]:
    """Dice and the share of decodable rows (thresholded reconstruction == input)."""
    device = resolve_device(device)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    pred = _eval_in_batches(module.to(device), xt)
    return {"dice": -float(dice_loss(pred, xt)), "decodable_pct": 100 * float(decodable(pred, xt).float().mean()),
            "n": int(len(x))}


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: (||grad critic(x_hat)|| - 1)^2 on random interpolates (Gulrajani et al. 2017)."""
    eps = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


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


def fit_wgan(gan, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int = 100,
             batch_size: int = 32, lr_g: float = 1e-4, lr_d: float = 1e-4, betas=(0.5, 0.9),
             n_critic: int = 5, gp_lambda: float = 10.0, clip: float | None = None,
             max_steps: int | None = None, device=None, seed: int = 0, progress: bool = True,
             threads: int | None = DEFAULT_TRAIN_THREADS, label: str = "train wgan",
             on_epoch=None) -> History:
    """Wasserstein GAN: gradient penalty (lambda 10) by default; ``clip=c`` switches to weight
    clipping to [-c, c] (the original MatGAN code; set gp_lambda to 0 or leave it, it is unused).
    One generator step per ``n_critic`` critic steps; ``steps`` counts generator steps.

    Reproducible: the same (gan's initial weights, data, seed, threads) give bit-identical weights
    on the same machine and software, whatever the load. Every random draw (shuffles, latent
    vectors, gradient-penalty interpolation) comes from generators seeded here, never the global
    RNG, and training runs under ``reproducible(threads)`` (1 thread by default: also the fastest
    for these small convolutions on a shared CPU). ``on_epoch(epoch, hist)`` runs after each epoch
    (monitoring; the modules are in eval mode then)."""
    device = resolve_device(device)
    with reproducible(threads):
        return _fit_wgan(gan, x_train, x_val, epochs=epochs, batch_size=batch_size, lr_g=lr_g,
                         lr_d=lr_d, betas=betas, n_critic=n_critic, gp_lambda=gp_lambda, clip=clip,
                         max_steps=max_steps, device=device, seed=seed, progress=progress, label=label,
                         on_epoch=on_epoch)


def _fit_wgan(gan, x_train, x_val, *, epochs, batch_size, lr_g, lr_d, betas, n_critic, gp_lambda,
              clip, max_steps, device, seed, progress, label, on_epoch) -> History:
    gan.to(device)
    g, d = gan.generator, gan.critic
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=betas)
    gen = torch.Generator().manual_seed(seed)                      # shuffles (CPU, as randperm)
    noise = torch.Generator(device=device).manual_seed(seed + 1)   # z and GP interpolation
    z_val = torch.randn(len(xv), gan.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    hist, t0, critic_steps = History(), time.perf_counter(), 0
    w_est = 0.0

    def latent(n: int) -> torch.Tensor:
        return torch.randn(n, gan.latent_dim, device=device, generator=noise)

    with _progress(epochs, label, progress) as bar:
        for epoch in range(1, epochs + 1):
            g.train()
            d.train()
            d_total, g_total, n_g = 0.0, 0.0, 0
            for idx in _batches(len(xt), batch_size, gen, device):
                if len(idx) < 2:
                    continue
                real = xt[idx]
                fake = g(latent(len(idx))).detach()
                opt_d.zero_grad(set_to_none=True)
                w = d(real).mean() - d(fake).mean()
                loss_d = -w  # thesis Eq. 3-2
                if clip is None and gp_lambda:
                    loss_d = loss_d + gp_lambda * gradient_penalty(d, real, fake, noise)
                loss_d.backward()
                opt_d.step()
                if clip is not None:
                    with torch.no_grad():
                        for p in d.parameters():
                            p.clamp_(-clip, clip)
                d_total += w.item()
                critic_steps += 1
                if critic_steps % n_critic == 0:
                    opt_g.zero_grad(set_to_none=True)
                    loss_g = -d(g(latent(len(idx)))).mean()  # Eq. 3-1
                    loss_g.backward()
                    opt_g.step()
                    g_total += loss_g.item()
                    n_g += 1
                    hist.steps += 1
                    if max_steps is not None and hist.steps >= max_steps:
                        break
            g.eval()
            d.eval()
            with torch.no_grad():  # critic's Wasserstein estimate: validation rows vs fixed fakes
                w_est = float(_eval_in_batches(d, xv).mean() - _eval_in_batches(d, g(z_val)).mean())
            hist.train_loss.append(g_total / max(n_g, 1))
            hist.val_loss.append(w_est)
            hist.epochs_run = hist.best_epoch = epoch
            _tick(bar, f"W {d_total / max(critic_steps, 1):.3f}  loss_G {hist.train_loss[-1]:.3f}  val W {w_est:.3f}")
            if on_epoch is not None:
                on_epoch(epoch, hist)
            if max_steps is not None and hist.steps >= max_steps:
                break
    hist.best_val = w_est
    gan.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def fit_transformer(module, tok_train: np.ndarray, tok_val: np.ndarray, *, epochs: int = 50,
                    batch_size: int = 256, lr: float = 1e-3, patience: int = 5,
                    weight_decay: float = 0.0, max_steps: int | None = None, device=None,
                    seed: int = 0, progress: bool = True, threads: int | None = DEFAULT_TRAIN_THREADS,
                    label: str = "train transformer") -> History:
    """Teacher forcing with cross-entropy (CompositionTransformer.loss) on token rows; AdamW with
    a cosine schedule over ``epochs``; keeps the state with the best validation loss and stops
    after ``patience`` epochs without a better one. Reproducible like fit_wgan (fixed threads)."""
    device = resolve_device(device)
    with reproducible(threads):
        torch.manual_seed(seed)   # dropout draws from the global generator, seeded here
        module.to(device)
        tt = torch.as_tensor(tok_train, dtype=torch.long, device=device)
        tv = torch.as_tensor(tok_val, dtype=torch.long, device=device)
        opt = _optimizer("adamw", module.parameters(), lr, weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

        def val_loss() -> float:   # mean per predicted token over all validation rows
            module.eval()
            total, n = 0.0, 0
            with torch.no_grad():
                for i in range(0, len(tv), 4096):
                    part = tv[i:i + 4096]
                    m = int((part[:, 1:] != 0).sum())
                    total += float(module.loss(part)) * m
                    n += m
            return total / max(n, 1)

        return _fit_loop(module, len(tt), lambda idx: module.loss(tt[idx]), val_loss, opt=opt,
                         sched=sched, epochs=epochs, batch_size=batch_size, patience=patience,
                         max_steps=max_steps, seed=seed, device=device, progress=progress,
                         label=label, shown="CE")
