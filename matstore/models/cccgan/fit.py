"""Training: WGAN-GP critic, classifier and generator with seed 003's losses (Table S1).

Per batch of real images x with conditions C_real (their counts) and atom rows A_real, and a
generated batch x~ = G(z, C_gen) (C_gen: the batch's conditions shuffled, and, given a pool of
cell compositions, every other row drawn from the pool instead, so the generator and classifier
also learn compositions without real images; A_gen: the first C_gen rows of each element block,
where real images hold their atoms):
- critic:     D(x~) - D(x) + lambda_GP (||grad D(x^)|| - 1)^2
- classifier: L_atom + lambda_c L_comp, L_comp = CE(C_real) + lambda_1 CE(C_gen),
              L_atom = CE(A_real) + lambda_2 CE(A_gen)
- generator (every n_critic-th batch): -D(x~) + lambda_2 CE(A_gen) + lambda_c lambda_1 CE(C_gen)
Deterministic per seed (at a fixed torch thread count): the weights start from torch.manual_seed
(seed), and epoch e shuffles with numpy default_rng([seed, e]) and draws noise from a torch
Generator seeded with (seed, e), so a run resumed from the checkpoint of epoch e continues exactly
as the uninterrupted one. The checkpoint (weights, optimiser states, history) is torch.save of
tensors and plain containers, read back with weights_only=True.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import ModelConfigError
from .config import CCCGANConfig
from ...structures.image import ImageLayout, occupied, select_rows
from .networks import CCCGAN

CHECKPOINT_FORMAT = "matstore-cccgan-checkpoint/1"


def layout_of(c: CCCGANConfig) -> ImageLayout:
    return ImageLayout(c.elements, c.rows)


def conditions(counts: np.ndarray, c: CCCGANConfig) -> np.ndarray:
    """(n, n_elements) atom counts -> (n, condition_dim) float32: one one-hot per element."""
    counts = np.asarray(counts, np.int64)
    out = np.zeros((len(counts), c.condition_dim), np.float32)
    start = 0
    for i, r in enumerate(c.rows):
        out[np.arange(len(counts)), start + counts[:, i]] = 1
        start += r + 1
    return out


def comp_loss(logits: torch.Tensor, counts: torch.Tensor, c: CCCGANConfig) -> torch.Tensor:
    """Cross-entropy of the composition head: the sum over elements of each count softmax's CE."""
    loss, start = 0.0, 0
    for i, r in enumerate(c.rows):
        loss = loss + F.cross_entropy(logits[:, start:start + r + 1], counts[:, i])
        start += r + 1
    return loss


def predicted_counts(logits: torch.Tensor, c: CCCGANConfig) -> torch.Tensor:
    out, start = [], 0
    for r in c.rows:
        out.append(logits[:, start:start + r + 1].argmax(1))
        start += r + 1
    return torch.stack(out, 1)


def data_sha256(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images, "<f8").tobytes()).hexdigest()


def _noise_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2 ** 63)


def build(c: CCCGANConfig, seed: int) -> CCCGAN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return CCCGAN(c)


def _optimizers(m: CCCGAN, c: CCCGANConfig):
    h = c.hyper
    mk = lambda net: torch.optim.Adam(net.parameters(), lr=h["lr"], betas=(h["beta1"], h["beta2"]))  # noqa: E731
    return {"generator": mk(m.generator), "critic": mk(m.critic), "classifier": mk(m.classifier)}


def gradient_penalty(critic, real, fake, eps):
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    g, = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()


def fit(images: np.ndarray, config: CCCGANConfig, epochs: int, seed: int = 0,
        checkpoint: str | Path | None = None, max_seconds: float | None = None,
        on_batch=None, pool: np.ndarray | None = None) -> tuple[CCCGAN, list[dict]]:
    """Train on (n, height, 3) images for `epochs` epochs (fewer if max_seconds runs out at an
    epoch's end); resume from checkpoint when it holds an earlier epoch of the same run (config,
    seed, data). pool: (k, n_elements) cell counts that generated conditions are also drawn from.
    Returns (module in eval mode, per-epoch history)."""
    c = config
    lay = layout_of(c)
    x_all = np.asarray(images, np.float32)
    if x_all.ndim != 3 or x_all.shape[1:] != (lay.height, 3):
        raise ModelConfigError(f"cccgan fit: images of shape {x_all.shape}, expected (n, {lay.height}, 3)")
    occ = occupied(x_all)
    counts = lay.counts(occ)
    cond_all = conditions(counts, c)
    sha = data_sha256(images)
    if pool is not None:
        pool = np.asarray(pool, np.int64).reshape(-1, len(c.rows))
        if not len(pool) or (pool < 0).any() or (pool > np.array(c.rows)).any():
            raise ModelConfigError(f"cccgan fit: condition pool counts must be 0..{c.rows}")
        sha = hashlib.sha256((sha + data_sha256(pool.astype(float))).encode()).hexdigest()
        pool_cond = torch.from_numpy(conditions(pool, c))
        pool_counts = torch.from_numpy(pool)
    m = build(c, seed)
    opts = _optimizers(m, c)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        start, history = _load_checkpoint(checkpoint, m, opts, c, seed, sha)
    h = c.hyper
    bs = int(h["batch_size"])
    t0 = time.perf_counter()
    for epoch in range(start, int(epochs)):
        m.train()
        order = np.random.default_rng([int(seed), epoch]).permutation(len(x_all))
        gen = torch.Generator().manual_seed(_noise_seed(seed, epoch))
        sums = {"critic": 0.0, "classifier": 0.0, "generator": 0.0, "wasserstein": 0.0}
        n_b = n_g = 0
        for k in range(len(order) // bs):       # whole batches only (batch norm)
            idx = order[k * bs:(k + 1) * bs]
            real = torch.from_numpy(x_all[idx])[:, None]
            c_real = torch.from_numpy(counts[idx])
            a_real = torch.from_numpy(occ[idx].astype(np.int64))
            shuffle = torch.randperm(bs, generator=gen)
            c_gen = c_real[shuffle]
            cond_gen = torch.from_numpy(cond_all[idx])[shuffle]
            if pool is not None:
                pick = torch.randint(len(pool), (bs,), generator=gen)[::2]
                c_gen[::2], cond_gen[::2] = pool_counts[pick], pool_cond[pick]
            a_gen = torch.from_numpy(select_rows(c_gen.numpy(), lay).astype(np.int64))
            z = torch.randn(bs, c.latent_dim, generator=gen)
            eps = torch.rand(bs, 1, 1, 1, generator=gen)
            fake = m.generator(z, cond_gen)
            # critic
            d_real, d_fake = m.critic(real).mean(), m.critic(fake.detach()).mean()
            loss_d = d_fake - d_real + h["lambda_gp"] * gradient_penalty(m.critic, real, fake.detach(), eps)
            opts["critic"].zero_grad()
            loss_d.backward()
            opts["critic"].step()
            # classifier
            atom_r, comp_r = m.classifier(real)
            atom_f, comp_f = m.classifier(fake.detach())
            l_comp = comp_loss(comp_r, c_real, c) + h["lambda1"] * comp_loss(comp_f, c_gen, c)
            l_atom = (F.cross_entropy(atom_r.reshape(-1, 2), a_real.reshape(-1))
                      + h["lambda2"] * F.cross_entropy(atom_f.reshape(-1, 2), a_gen.reshape(-1)))
            loss_c = l_atom + h["lambda_c"] * l_comp
            opts["classifier"].zero_grad()
            loss_c.backward()
            opts["classifier"].step()
            # generator
            if k % int(h["n_critic"]) == int(h["n_critic"]) - 1:
                atom_g, comp_g = m.classifier(fake)
                loss_g = (-m.critic(fake).mean()
                          + h["lambda2"] * F.cross_entropy(atom_g.reshape(-1, 2), a_gen.reshape(-1))
                          + h["lambda_c"] * h["lambda1"] * comp_loss(comp_g, c_gen, c))
                opts["generator"].zero_grad()
                loss_g.backward()
                opts["generator"].step()
                sums["generator"] += loss_g.item()
                n_g += 1
            sums["critic"] += loss_d.item()
            sums["classifier"] += loss_c.item()
            sums["wasserstein"] += (d_real - d_fake).item()
            n_b += 1
            if on_batch:
                on_batch(1)
        history.append({"epoch": epoch + 1, "batches": n_b,
                        **{k: v / max(n_g if k == "generator" else n_b, 1) for k, v in sums.items()}})
        if checkpoint is not None:
            _save_checkpoint(checkpoint, m, opts, c, seed, sha, epoch + 1, history)
        if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
            break
    m.eval()
    return m, history


def _save_checkpoint(path, m, opts, c, seed, sha, epoch, history) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "epoch": int(epoch), "seed": int(seed), "data_sha256": sha,
                "config": c.to_dict(), "state_dict": m.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in opts.items()}, "history": history}, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path, m, opts, c, seed, sha) -> tuple[int, list[dict]]:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (anything unreadable is refused, nothing runs)
        raise ModelConfigError(f"cccgan checkpoint {path}: not readable as weights ({e})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ModelConfigError(f"cccgan checkpoint {path}: not a {CHECKPOINT_FORMAT} file")
    if ck.get("seed") != int(seed) or ck.get("data_sha256") != sha or ck.get("config") != c.to_dict():
        raise ModelConfigError(f"cccgan checkpoint {path}: made by another run (seed, data or config "
                               f"differ); remove it or train with its settings")
    m.load_state_dict(ck["state_dict"])
    for k, o in opts.items():
        o.load_state_dict(ck["optimizers"][k])
    return int(ck["epoch"]), list(ck.get("history") or [])
