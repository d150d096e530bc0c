"""The three networks of seed 003's Figure 2 (sizes in config.CCCGANConfig). Tensors are images
(B, 1, 2 + n_sites, 3): rows 0-1 the cell, then the site rows.

- Generator (z, C) -> image: FC, three transposed convs with batch norm + ReLU and one transposed
  conv + sigmoid for the coordinates; flatten, FC, batch norm, FC, sigmoid for the cell's 6 numbers
  (from the last hidden map averaged over its 3 columns: the FC stays small).
- Critic image -> score: convs + leaky ReLU, no normalisation (gradient penalty), a linear FC.
- Classifier image -> (atom logits (B, n_sites, 2), composition logits per element): four convs
  with batch norm + leaky ReLU; a 1x3 conv per row for atom/padding; FC, BN, FC, BN, FC for the
  counts (from the maps averaged over the columns).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import CCCGANConfig


class Generator(nn.Module):
    def __init__(self, c: CCCGANConfig):
        super().__init__()
        self.c = c
        h0 = c.n_sites // 4
        self.fc = nn.Sequential(nn.Linear(c.latent_dim + c.condition_dim, c.gen_fc * h0),
                                nn.BatchNorm1d(c.gen_fc * h0), nn.ReLU())
        c0, c1, c2 = c.gen_channels
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c.gen_fc, c0, (4, 3), (2, 1), (1, 0)), nn.BatchNorm2d(c0), nn.ReLU(),  # h0 x 1 -> 2h0 x 3
            nn.ConvTranspose2d(c0, c1, (4, 3), (2, 1), (1, 1)), nn.BatchNorm2d(c1), nn.ReLU(),        # -> 4h0 x 3
            nn.ConvTranspose2d(c1, c2, 3, 1, 1), nn.BatchNorm2d(c2), nn.ReLU())
        self.coords = nn.Sequential(nn.ConvTranspose2d(c2, 1, 3, 1, 1), nn.Sigmoid())
        self.cell = nn.Sequential(nn.Flatten(), nn.Linear(c2 * c.n_sites, c.cell_hidden),
                                  nn.BatchNorm1d(c.cell_hidden), nn.ReLU(), nn.Linear(c.cell_hidden, 6),
                                  nn.Sigmoid())

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, cond], 1)).view(len(z), self.c.gen_fc, self.c.n_sites // 4, 1)
        h = self.deconv(h)
        cell = self.cell(h.mean(3)).view(-1, 1, 2, 3)
        return torch.cat([cell, self.coords(h)], 2)


class Critic(nn.Module):
    def __init__(self, c: CCCGANConfig):
        super().__init__()
        c0, c1, c2 = c.critic_channels
        h = 2 + c.n_sites
        h2 = -(-(-(-h // 2)) // 2)
        self.net = nn.Sequential(
            nn.Conv2d(1, c0, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c0, c1, 3, (2, 1), 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c1, c2, 3, (2, 1), 1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(c2 * h2 * 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


class Classifier(nn.Module):
    def __init__(self, c: CCCGANConfig):
        super().__init__()
        self.c = c
        layers, prev = [], 1
        for ch in c.classifier_channels:
            layers += [nn.Conv2d(prev, ch, 3, 1, 1), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2)]
            prev = ch
        self.trunk = nn.Sequential(*layers)
        self.atom = nn.Conv2d(prev, 2, (1, 3))
        f0, f1 = c.classifier_fc
        self.comp = nn.Sequential(nn.Flatten(), nn.Linear(prev * (2 + c.n_sites), f0), nn.BatchNorm1d(f0),
                                  nn.LeakyReLU(0.2), nn.Linear(f0, f1), nn.BatchNorm1d(f1), nn.LeakyReLU(0.2),
                                  nn.Linear(f1, c.condition_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        atom = self.atom(h)[:, :, 2:, 0].transpose(1, 2)          # (B, n_sites, 2)
        return atom, self.comp(h.mean(3))                         # (B, condition_dim)


class CCCGAN(nn.Module):
    """The three networks as one module: one state_dict, one stored version."""

    def __init__(self, config: CCCGANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.critic = Critic(config)
        self.classifier = Classifier(config)
