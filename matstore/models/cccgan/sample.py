"""Sampling for a requested composition (seed 003, Figure 3): the generator draws images
conditioned on the requested cell counts; the classifier reads each image's composition and atom
rows; an image whose classified composition is the requested one is decoded with exactly that
many sites per element (the rows its atom head ranks highest), so its structure has the requested
composition. Others are kept as samples (the share is a measured number) but not decoded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import CCCGANConfig
from .fit import conditions, layout_of, predicted_counts
from ...structures.image import ImageError, decode, select_rows


@dataclass
class Samples:
    requested: np.ndarray      # (n_elements,) cell counts asked for
    images: np.ndarray         # (n, height, 3) float64
    atom_prob: np.ndarray      # (n, n_sites) classifier probability that a row is an atom
    classified: np.ndarray     # (n, n_elements) the classifier's composition
    atom_rows: np.ndarray      # (n, n_elements) rows with atom_prob > 0.5 per element

    @property
    def classifier_match(self) -> np.ndarray:
        return (self.classified == self.requested).all(1)

    @property
    def rows_match(self) -> np.ndarray:
        return (self.atom_rows == self.requested).all(1)


def check_counts(counts, c: CCCGANConfig) -> np.ndarray:
    counts = np.asarray(counts, np.int64).reshape(-1)
    if len(counts) != len(c.rows) or (counts < 0).any() or (counts > np.array(c.rows)).any() or counts.sum() == 0:
        raise ImageError(f"cell counts {counts.tolist()} for {'/'.join(c.elements)}: each must be 0..{c.rows} "
                         f"(the image's rows), not all zero")
    return counts


@torch.no_grad()
def sample(module, counts, n: int, generator: torch.Generator | None = None, device="cpu") -> Samples:
    """n images for cell counts (Mg, Mn, O), classified. A pure function of the weights, the
    generator's state and n."""
    c: CCCGANConfig = module.config
    counts = check_counts(counts, c)
    module.eval()
    module.to(device)
    z = torch.randn(n, c.latent_dim, generator=generator, device=generator.device if generator else device)
    cond = torch.from_numpy(conditions(np.tile(counts, (n, 1)), c)).to(device)
    x = module.generator(z.to(device), cond)
    atom, comp = module.classifier(x)
    prob = torch.softmax(atom.float(), -1)[..., 1].cpu().numpy()
    lay = layout_of(c)
    return Samples(counts, x[:, 0].double().cpu().numpy(), prob, predicted_counts(comp, c).cpu().numpy(),
                   lay.counts(prob > 0.5))


def structures(s: Samples, c: CCCGANConfig, only_matching: bool = True) -> list:
    """A pymatgen Structure per sample (None: not decoded: the classifier read another
    composition, or the image's cell is no cell), sites chosen by the requested counts and the
    atom head's ranking."""
    lay = layout_of(c)
    sel = select_rows(np.tile(s.requested, (len(s.images), 1)), lay, s.atom_prob)
    out = []
    for i in range(len(s.images)):
        if only_matching and not s.classifier_match[i]:
            out.append(None)
            continue
        try:
            out.append(decode(s.images[i], lay, sites=sel[i]))
        except ImageError:
            out.append(None)
    return out
