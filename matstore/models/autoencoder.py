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

from .gan import OQMD_CRITIC, OQMD_GENERATOR, Critic, CriticConfig, Generator, GeneratorConfig
from .errors import ModelConfigError


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
