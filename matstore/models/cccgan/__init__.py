"""The composition-conditioned crystal GAN (seed 003, Kim et al., ACS Cent. Sci. 2020) as one
self-contained model family: image (the 30x3 representation and its inverse), augment (supercells,
translations, axis swaps), config (Table S1), networks (generator, critic, classifier), fit
(WGAN-GP + classifier losses, deterministic per seed, resumable), sample (images for a requested
composition -> structures, through the classifier)."""

from . import kind  # noqa: F401,E402  (registers the kind)
