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

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from .errors import ModelConfigError

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
