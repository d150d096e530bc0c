"""MatGAN's autoencoder for the 8x85 one-hot matrix (thesis Table 3.5), trained with -Dice.

Decisions:
- Table 3.5 lists the encoder output as 5x4x256, but its own Conv7 (kernel 5, stride 2 on 11x8,
  "same" padding) gives 6x4, and the thesis says the decoder has the same architecture as the
  GAN-OQMD generator (6x4x256). We use 6x4x256 on both sides.
- The 128-d latent is linear (no norm, no activation) so it is a plain embedding for later
  active learning in the latent space; the encoder convs use batch norm + ReLU (thesis).
- Decodable (thesis 3.4.2): the decoded matrix, thresholded at 0.5, equals the input exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

import numpy as np

from . import loops
from .errors import ModelConfigError
from .family import FitData, FitResult, register
from .gan import (OQMD_CRITIC, OQMD_GENERATOR, Critic, CriticConfig, Generator, GeneratorConfig,
                  MapsGenerator)


@dataclass
class AutoencoderConfig:
    latent_dim: int = 128
    encoder: CriticConfig = field(default_factory=lambda: CriticConfig(OQMD_CRITIC, norm="batch"))
    decoder: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(128, 256, OQMD_GENERATOR))

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = CriticConfig(**self.encoder)
        if isinstance(self.decoder, dict):
            self.decoder = GeneratorConfig(**self.decoder)
        if self.decoder.latent_dim != self.latent_dim:
            raise ModelConfigError(f"decoder latent_dim {self.decoder.latent_dim} != latent_dim {self.latent_dim}")

    def to_dict(self) -> dict:
        return asdict(self)


class Autoencoder(nn.Module):
    """x (B, 8, 85) -> reconstruction probabilities (B, 8, 85); encode -> (B, latent_dim)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Critic(config.encoder)          # its fc is replaced by the latent FC
        self.encoder.fc = nn.Linear(self.encoder.flat_dim, config.latent_dim)
        self.decoder = Generator(config.decoder)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.fc(self.encoder.features(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Thesis Eq. 3-3: -2 A.B / (sum A + sum B), per sample, averaged over the batch."""
    dims = tuple(range(1, pred.dim()))
    inter = (pred * target).sum(dims)
    return -(2 * inter / (pred.sum(dims) + target.sum(dims) + eps)).mean()


@torch.no_grad()
def decodable(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(B,) bool: the thresholded reconstruction equals the input matrix exactly."""
    return ((pred > threshold) == (target > 0.5)).flatten(1).all(1)


# --- training and the family ------------------------------------------------------------------
def fit_autoencoder(module, x_train: np.ndarray, x_val: np.ndarray, *, epochs: int = 100,
                    batch_size: int = 1024, lr: float = 1e-3, patience: int = 20,
                    max_steps: int | None = None, device=None, seed: int = 0,
                    progress: bool = True, label: str = "train ae") -> loops.History:
    """Negative-Dice training (thesis Eq. 3-3); keeps the state with the best validation loss."""
    device = loops.resolve_device(device)
    torch.manual_seed(seed)
    module.to(device)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    xv = torch.as_tensor(x_val, dtype=torch.float32, device=device)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    return loops.fit_loop(module, len(xt), lambda idx: dice_loss(module(xt[idx]), xt[idx]),
                     lambda: float(dice_loss(loops.eval_in_batches(module, xv), xv)),
                     opt=opt, epochs=epochs, batch_size=batch_size, patience=patience,
                     max_steps=max_steps, seed=seed, device=device, progress=progress, label=label,
                     shown="-dice")


def autoencoder_metrics(module, x: np.ndarray, device=None) -> dict[str, float]:
    """Dice and the share of decodable rows (thresholded reconstruction == input)."""
    device = loops.resolve_device(device)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    pred = loops.eval_in_batches(module.to(device), xt)
    return {"dice": -float(dice_loss(pred, xt)), "decodable_pct": 100 * float(decodable(pred, xt).float().mean()),
            "n": int(len(x))}


class AutoencoderFamily(MapsGenerator):
    """Generates by decoding random latent vectors; its latent space is what active learning
    searches (al.latents)."""

    name, config, module = "autoencoder", AutoencoderConfig, Autoencoder
    latent_input = False
    latent_space = True

    def fit(self, module, data: FitData) -> FitResult:
        hp, sp, x = data.hyper, data.split, data.x
        hist = fit_autoencoder(module, x[sp.train], x[sp.val], epochs=hp["epochs"],
                               batch_size=hp["batch_size"], lr=hp["lr"], patience=hp["patience"],
                               max_steps=data.max_steps, device=data.device, seed=data.seed,
                               progress=data.progress, label=data.label)
        return FitResult(module, {"train": autoencoder_metrics(module, x[sp.train], data.device),
                                  "test": autoencoder_metrics(module, x[sp.test], data.device),
                                  "history": hist.to_dict()})

    def sample(self, loaded, n, generator, device, **sampling):
        device = device or loaded.device
        loaded.to(device)
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, loaded.latent_dim, generator=generator, device=gen_device).to(device)
        with torch.no_grad():
            return loaded.module.decode(z)


register(AutoencoderFamily())
