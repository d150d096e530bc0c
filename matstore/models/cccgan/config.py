"""The CCCGAN's configuration: the networks' sizes (config) and Table S1's training settings
(hyperparams), written once here.

Decisions where the seed is silent (stated in docs/benchmarks/cccgan.md too):
- The composition condition C is the cell's atom counts as one one-hot per element (Mg 0..8,
  Mn 0..8, O 0..12: 31 numbers), so any cell composition the image holds can be requested,
  including ones absent from the training set (the seed generates for 20 of those).
- The classifier's "atom" output is per image row: atom or padding (28 two-way softmaxes); its
  composition output is the three count softmaxes. A generated image's sites are the rows the atom
  head ranks highest, as many per element as the composition head says (Figure 3).
- Generated conditions during training are the real batch's conditions, shuffled.
- Critic: no batch norm (WGAN-GP's per-sample gradient penalty, Gulrajani et al. sec. 4). One
  critic step per generator step (Table S1 does not say; WGAN-GP's default is 5, but on a CPU
  budget of minutes 5 leaves the generator a few hundred updates: measured, 4 epochs gave
  classifier-matching samples for one composition only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import ModelConfigError
from ...structures.image import MGMNO

# Table S1 (batch, Adam lr and betas, lambda_GP, lambda_1, lambda_2, lambda_c) + n_critic.
TABLE_S1 = {"batch_size": 32, "lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "lambda_gp": 10.0,
            "lambda1": 1.0, "lambda2": 1.0, "lambda_c": 0.3, "n_critic": 1}


@dataclass
class CCCGANConfig:
    elements: tuple[str, ...] = MGMNO.elements
    rows: tuple[int, ...] = MGMNO.rows
    latent_dim: int = 64
    gen_fc: int = 64                 # FC output channels, reshaped to (gen_fc, rows/4, 1)
    gen_channels: tuple[int, ...] = (64, 32, 16)   # the three transposed convs with batch norm
    cell_hidden: int = 64            # flatten -> FC -> BN -> FC -> sigmoid: the cell's 6 numbers
    critic_channels: tuple[int, ...] = (32, 64, 64)
    classifier_channels: tuple[int, ...] = (32, 32, 32, 32)   # four convs with batch norm
    classifier_fc: tuple[int, ...] = (64, 64)                  # two FC layers with batch norm
    hyper: dict = field(default_factory=lambda: dict(TABLE_S1))

    def __post_init__(self):
        self.elements = tuple(str(e) for e in self.elements)
        self.rows = tuple(int(r) for r in self.rows)
        self.gen_channels = tuple(int(c) for c in self.gen_channels)
        self.critic_channels = tuple(int(c) for c in self.critic_channels)
        self.classifier_channels = tuple(int(c) for c in self.classifier_channels)
        self.classifier_fc = tuple(int(c) for c in self.classifier_fc)
        self.hyper = {**TABLE_S1, **dict(self.hyper or {})}
        if len(self.elements) != len(self.rows) or sum(self.rows) % 4:
            raise ModelConfigError(f"cccgan: {len(self.elements)} elements and rows {self.rows} "
                                   f"(the site rows must be a multiple of 4)")
        if len(self.gen_channels) != 3 or len(self.classifier_channels) != 4 or len(self.classifier_fc) != 2:
            raise ModelConfigError("cccgan: 3 generator, 4 classifier conv and 2 classifier FC sizes")
        sizes = (self.latent_dim, self.gen_fc, self.cell_hidden, *self.gen_channels,
                 *self.critic_channels, *self.classifier_channels, *self.classifier_fc)
        if min(sizes) < 1 or max(sizes) > 1024:
            raise ModelConfigError(f"cccgan: layer sizes must be 1..1024, got {sizes}")
        unknown = set(self.hyper) - set(TABLE_S1)
        if unknown:
            raise ModelConfigError(f"cccgan: unknown training settings {sorted(unknown)}")

    @property
    def n_sites(self) -> int:
        return sum(self.rows)

    @property
    def condition_dim(self) -> int:
        return sum(r + 1 for r in self.rows)

    def to_dict(self) -> dict:
        return asdict(self)
