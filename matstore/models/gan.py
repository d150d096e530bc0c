"""MatGAN's Wasserstein GAN for the 8x85 one-hot composition matrix (thesis Tables 3.1, 3.2).

Layout: the public face is (B, 8, 85) (``maps[i, j, e] = 1`` iff element e has count j+1), the
layout of ``matstore.features.onehot``. Inside, tensors are NCHW with H = 85 elements and W = 8
counts, exactly the tables' ``[batch, 85, 8, C]`` shapes; the modules transpose at the edges.

Decisions where the tables are silent or ambiguous (written once, here):
- Padding is "same" (k // 2) everywhere. Strided convs then give 85->43->22->11->6 and 8->4 as the
  tables list; transposed convs get the output_padding that lands on the mirrored size
  (6->11->22->43->85, 4->8), because ``(in-1)*s + 1`` alone would give 6->11 but 11->21.
- The generator's FC layer is followed by batch norm + ReLU like every deconv (the thesis: every
  normalization layer uses ReLU; only the output uses sigmoid).
- The critic's convs use ``critic_norm``: "batch" is the thesis (and matches weight clipping, the
  original code); the default is "layer" (GroupNorm with one group) because batch norm makes the
  critic's output depend on the batch, which breaks the per-sample gradient penalty of WGAN-GP
  (Gulrajani et al. 2017, section 4). The critic's last FC is linear (a Wasserstein critic).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from . import loops
from .errors import ModelConfigError
from .family import FitData, FitResult, TorchFamily, register

N_COUNTS, N_ELEMENTS = 8, 85
Layer = tuple[int, int, int, int, int]  # out_channels, kernel_h, kernel_w, stride_h, stride_w

# Table 3.1 (GAN-OQMD): generator deconvs, critic convs (input side first).
OQMD_GENERATOR: tuple[Layer, ...] = ((128, 5, 5, 2, 2), (128, 3, 3, 2, 1), (64, 3, 3, 1, 1),
                                     (64, 3, 3, 2, 1), (32, 3, 3, 1, 1), (32, 3, 3, 2, 1),
                                     (1, 3, 3, 1, 1))
OQMD_CRITIC: tuple[Layer, ...] = ((32, 3, 3, 1, 1), (32, 3, 3, 2, 1), (64, 3, 3, 1, 1),
                                  (64, 3, 3, 2, 1), (128, 3, 3, 1, 1), (128, 3, 3, 2, 1),
                                  (256, 5, 5, 2, 2))
# Table 3.2 (GAN-MP, GAN-ICSD).
SMALL_GENERATOR: tuple[Layer, ...] = ((64, 5, 5, 2, 2), (32, 3, 3, 2, 1), (16, 3, 3, 2, 1),
                                      (1, 3, 3, 2, 1))
SMALL_CRITIC: tuple[Layer, ...] = ((16, 3, 3, 2, 1), (32, 3, 3, 2, 1), (64, 3, 3, 2, 1),
                                   (128, 5, 5, 2, 2))


def _tuples(layers) -> tuple[Layer, ...]:
    return tuple(tuple(int(v) for v in layer) for layer in layers)  # JSON gives lists back


def conv_sizes(layers: tuple[Layer, ...], h: int = N_ELEMENTS, w: int = N_COUNTS) -> list[tuple[int, int]]:
    """Spatial sizes before each strided "same" conv and after the last: [(85, 8), ..., (6, 4)]."""
    sizes = [(h, w)]
    for _, _, _, sh, sw in layers:
        h, w = -(-h // sh), -(-w // sw)
        sizes.append((h, w))
    return sizes


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ModelConfigError(f"unknown norm {kind!r} (batch, layer, none)")


@dataclass
class GeneratorConfig:
    latent_dim: int = 128
    fc_channels: int = 256                     # the FC output is reshaped to fc_channels x 6 x 4
    deconvs: tuple[Layer, ...] = OQMD_GENERATOR

    def __post_init__(self):
        self.deconvs = _tuples(self.deconvs)


class Generator(nn.Module):
    """z (B, latent_dim) -> sigmoid probabilities (B, 8, 85). Also the autoencoder's decoder."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        # The deconvs undo a "same"-conv stack with the reversed strides: sizes are its mirror.
        mirror = tuple((c, kh, kw, sh, sw) for c, kh, kw, sh, sw in reversed(config.deconvs))
        sizes = list(reversed(conv_sizes(mirror)))
        self.start = sizes[0]
        self.fc = nn.Linear(config.latent_dim, config.fc_channels * self.start[0] * self.start[1])
        self.fc_norm = nn.BatchNorm1d(config.fc_channels * self.start[0] * self.start[1])
        layers: list[nn.Module] = []
        c_in = config.fc_channels
        for i, (c_out, kh, kw, sh, sw) in enumerate(config.deconvs):
            (hi, wi), (ho, wo) = sizes[i], sizes[i + 1]
            op = (ho - ((hi - 1) * sh + 1), wo - ((wi - 1) * sw + 1))
            if not (0 <= op[0] < sh and 0 <= op[1] < sw):
                raise ModelConfigError(f"deconv {i + 1}: cannot map {hi}x{wi} to {ho}x{wo} with stride {sh}x{sw}")
            layers.append(nn.ConvTranspose2d(c_in, c_out, (kh, kw), (sh, sw), (kh // 2, kw // 2), op))
            last = i == len(config.deconvs) - 1
            layers += [nn.Sigmoid()] if last else [nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        if c_in != 1:
            raise ModelConfigError("the last deconv must have 1 output channel")
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc_norm(self.fc(z)))
        h = h.view(-1, self.config.fc_channels, *self.start)
        return self.deconvs(h)[:, 0].transpose(1, 2)  # (B, 85, 8) -> (B, 8, 85)


@dataclass
class CriticConfig:
    convs: tuple[Layer, ...] = OQMD_CRITIC
    norm: str = "layer"                         # batch (thesis) | layer (WGAN-GP safe) | none
    activation: str = "relu"                    # relu (thesis) | leaky_relu (0.2)

    def __post_init__(self):
        self.convs = _tuples(self.convs)


class Critic(nn.Module):
    """x (B, 8, 85) -> (B,) unbounded Wasserstein scores. Also the autoencoder's encoder body."""

    def __init__(self, config: CriticConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, kh, kw, sh, sw in config.convs:
            layers += [nn.Conv2d(c_in, c_out, (kh, kw), (sh, sw), (kh // 2, kw // 2)),
                       _norm2d(config.norm, c_out),
                       nn.LeakyReLU(0.2) if config.activation == "leaky_relu" else nn.ReLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        h, w = conv_sizes(config.convs)[-1]
        self.flat_dim = c_in * h * w
        self.fc = nn.Linear(self.flat_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 8, 85) -> flattened conv features (B, C*6*4)."""
        return self.convs(x.transpose(1, 2).unsqueeze(1)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)).squeeze(1)


@dataclass
class WGANConfig:
    """Both halves of one GAN; ``latent_dim`` is the generator's input size."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)

    def __post_init__(self):
        if isinstance(self.generator, dict):
            self.generator = GeneratorConfig(**self.generator)
        if isinstance(self.critic, dict):
            self.critic = CriticConfig(**self.critic)

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    @classmethod
    def oqmd(cls, **critic) -> "WGANConfig":
        """Table 3.1 (GAN-OQMD)."""
        return cls(GeneratorConfig(128, 256, OQMD_GENERATOR), CriticConfig(OQMD_CRITIC, **critic))

    @classmethod
    def small(cls, **critic) -> "WGANConfig":
        """Table 3.2 (GAN-MP and GAN-ICSD)."""
        return cls(GeneratorConfig(128, 128, SMALL_GENERATOR), CriticConfig(SMALL_CRITIC, **critic))

    def to_dict(self) -> dict:
        return asdict(self)


class WGAN(nn.Module):
    """Generator + critic kept together, so a saved version can be sampled or trained further."""

    def __init__(self, config: WGANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config.generator)
        self.critic = Critic(config.critic)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: str | torch.device | None = None) -> torch.Tensor:
        """n samples (n, 8, 85) of probabilities; z is drawn on the torch.Generator's device."""
        device = torch.device(device) if device is not None else next(self.parameters()).device
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, self.latent_dim, generator=generator, device=gen_device).to(device)
        return self.generator(z)


# --- training (the WGAN family's fit) ------------------------------------------------------------
def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: (||grad critic(x_hat)|| - 1)^2 on random interpolates (Gulrajani et al. 2017)."""
    eps = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, generator=generator)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def fit_wgan(gan, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int = 100,
             batch_size: int = 32, lr_g: float = 1e-4, lr_d: float = 1e-4, betas=(0.5, 0.9),
             n_critic: int = 5, gp_lambda: float = 10.0, clip: float | None = None,
             max_steps: int | None = None, device=None, seed: int = 0, progress: bool = True,
             threads: int | None = loops.DEFAULT_TRAIN_THREADS, label: str = "train wgan",
             on_epoch=None) -> loops.History:
    """Wasserstein GAN: gradient penalty (lambda 10) by default; ``clip=c`` switches to weight
    clipping to [-c, c] (the original MatGAN code; set gp_lambda to 0 or leave it, it is unused).
    One generator step per ``n_critic`` critic steps; ``steps`` counts generator steps.

    Reproducible: the same (gan's initial weights, data, seed, threads) give bit-identical weights
    on the same machine and software, whatever the load. Every random draw (shuffles, latent
    vectors, gradient-penalty interpolation) comes from generators seeded here, never the global
    RNG, and training runs under ``loops.reproducible(threads)`` (1 thread by default: also the fastest
    for these small convolutions on a shared CPU). ``on_epoch(epoch, hist)`` runs after each epoch
    (monitoring; the modules are in eval mode then)."""
    device = loops.resolve_device(device)
    with loops.reproducible(threads):
        return _fit_wgan(gan, x_train, x_val, epochs=epochs, batch_size=batch_size, lr_g=lr_g,
                         lr_d=lr_d, betas=betas, n_critic=n_critic, gp_lambda=gp_lambda, clip=clip,
                         max_steps=max_steps, device=device, seed=seed, progress=progress, label=label,
                         on_epoch=on_epoch)


def _fit_wgan(gan, x_train, x_val, *, epochs, batch_size, lr_g, lr_d, betas, n_critic, gp_lambda,
              clip, max_steps, device, seed, progress, label, on_epoch) -> loops.History:
    gan.to(device)
    g, d = gan.generator, gan.critic
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=betas)
    gen = torch.Generator().manual_seed(seed)                      # shuffles (CPU, as randperm)
    noise = torch.Generator(device=device).manual_seed(seed + 1)   # z and GP interpolation
    z_val = torch.randn(len(xv), gan.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    hist, t0, critic_steps = loops.History(), time.perf_counter(), 0
    w_est = 0.0

    def latent(n: int) -> torch.Tensor:
        return torch.randn(n, gan.latent_dim, device=device, generator=noise)

    with loops.progress_bar(epochs, label, progress) as bar:
        for epoch in range(1, epochs + 1):
            g.train()
            d.train()
            d_total, g_total, n_g = 0.0, 0.0, 0
            for idx in loops.batches(len(xt), batch_size, gen, device):
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
                w_est = float(loops.eval_in_batches(d, xv).mean() - loops.eval_in_batches(d, g(z_val)).mean())
            hist.train_loss.append(g_total / max(n_g, 1))
            hist.val_loss.append(w_est)
            hist.epochs_run = hist.best_epoch = epoch
            loops.tick(bar, f"W {d_total / max(critic_steps, 1):.3f}  loss_G {hist.train_loss[-1]:.3f}  val W {w_est:.3f}")
            if on_epoch is not None:
                on_epoch(epoch, hist)
            if max_steps is not None and hist.steps >= max_steps:
                break
    hist.best_val = w_est
    gan.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


def init_output_bias(gan, value: float) -> None:
    """Start the generator's last deconv bias at ``value``: sigmoid(-4) = 0.018 puts every cell of
    the fresh generator below the 0.2 decode threshold, near the maps' density (~4 set cells of
    680), instead of 0.5 (all 680 cells set); the GAN then learns to light cells up rather than
    to switch off nearly all of them, which it did not manage in minutes of CPU training."""
    last = [m for m in gan.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.bias.fill_(value)


# --- the family --------------------------------------------------------------------------------
class MapsGenerator(TorchFamily):
    """A generator of one-hot 8x85 maps (features.onehot): learns the rows the encoding holds,
    and its samples are thresholded back into compositions."""

    generator, inputs = True, "maps"
    latent_input = True   # the module reads a latent vector (the GAN); else maps (autoencoder)

    def encode(self, batch, featurizer, config):
        from ..features import onehot  # noqa: PLC0415

        maps, ok = onehot.encode(batch)
        ok = np.asarray(ok, bool)
        return np.asarray(maps, np.float32)[ok], ok

    def card(self, config, hyperparams):
        from ..features import onehot  # noqa: PLC0415

        out = onehot.OneHot()
        maps = {"featurizer": out.name, "featurizer_version": out.version,
                "shape": list(out.shape), "labels": list(out.labels)}
        latent = getattr(self.make_config(config), "latent_dim", None)
        return {"inputs": ({"featurizer": "latent", "shape": [latent], "labels": None}
                           if self.latent_input else maps),
                "outputs": {**maps, "meaning": "probability of each (element, count) cell; "
                                               "decode with matstore.features.onehot.decode"},
                "latent_dim": latent}

    def decode(self, samples, tolerance, batch_no, first_sample):
        from .. import samples as decoding  # noqa: PLC0415

        return decoding.decode_batch(samples, tolerance, batch_no, first_sample)


class WGANFamily(MapsGenerator):
    name, config, module = "wgan", WGANConfig, WGAN

    def fit(self, module, data: FitData) -> FitResult:
        hp, sp = data.hyper, data.split
        if hp.get("output_bias"):
            init_output_bias(module, float(hp["output_bias"]))
        hist = fit_wgan(module, data.x[sp.train], data.x[sp.val], epochs=hp["epochs"],
                        batch_size=hp["batch_size"], lr_g=hp["lr_g"], lr_d=hp["lr_d"],
                        n_critic=hp["n_critic"], gp_lambda=hp["gp_lambda"], clip=hp["clip"],
                        threads=hp.get("threads"), max_steps=data.max_steps, device=data.device,
                        seed=data.seed, progress=data.progress, label=data.label)
        from ..training.sample_metrics import generation_metrics  # noqa: PLC0415

        samples = module.sample(int(hp["n_eval_samples"]), torch.Generator().manual_seed(data.seed), data.device)
        ids = data.batch.composition_id
        sample = generation_metrics(samples.cpu().numpy(), ids[sp.train], known_ids=data.known_ids(),
                                    leave_out_ids=ids[sp.test])
        return FitResult(module, {"sample": sample, "history": hist.to_dict()})

    def sample(self, loaded, n, generator, device, **sampling):
        if device is not None and str(device) != loaded.device:
            loaded.to(device)
        return loaded.module.sample(n, generator, device or loaded.device)


register(WGANFamily())
