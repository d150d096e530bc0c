"""The CCCGAN as a model family (models.family protocol): a structure generator - neither a
composition generator (`generate --model` without --composition) nor a property predictor. Trained
by structgen.train (`matstore train-cccgan`), sampled by structgen runs (`generate --composition`);
weights are the three networks' state_dict, read with weights_only=True."""

from __future__ import annotations

from ..family import TorchFamily, register
from .config import CCCGANConfig
from .networks import CCCGAN


class CCCGANFamily(TorchFamily):
    name = "cccgan"
    config = CCCGANConfig
    module = CCCGAN
    inputs = "image"

    def card(self, config, hyperparams: dict) -> dict:
        c = self.make_config(config)
        image = {"featurizer": "cccgan-image", "shape": [2 + c.n_sites, 3], "labels": None,
                 "meaning": f"cell lengths/30 A, angles/180 deg, then {dict(zip(c.elements, c.rows))} "
                            f"site rows of p' = (2/3) p + 1/6 (structures.image)"}
        return {"inputs": {"featurizer": "latent+condition", "shape": [c.latent_dim + c.condition_dim],
                           "labels": None, "meaning": "noise and one one-hot of atom counts per element"},
                "outputs": image, "latent_dim": c.latent_dim, "target": None,
                "training": {k: (hyperparams or {}).get(k) for k in ("epochs", "per_composition", "holdout")}}


register(CCCGANFamily())
