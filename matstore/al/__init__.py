"""Active learning in the store (seed 001): campaigns that encode compositions with the
autoencoder, fit a Gaussian process on the latents, propose batches by an acquisition function,
decode them, have an oracle label them and retrain a screening predictor on base + labels.

Modules: campaigns (the records), latents (stored autoencoder latents, encode/decode),
surrogate (the GP), acquisition (targets, UCB/EI/Thompson/straddle, batch selection), oracles (the
registry: model:NAME@N, external), labels (labels as properties of their own source; export
and label files), loop (start, step, run), screening (finish, screen).
"""

from __future__ import annotations

from .acquisition import ACQUISITIONS, DEFAULT_KAPPA, Target
from .campaigns import Campaign, get, proposals, status
from .errors import ALError
from .labels import export, ingest_file
from .loop import StepResult, run, start, step, training_set
from .screening import FinishResult, finish, screen, screen_campaign
from .oracles import ORACLES

__all__ = ["ACQUISITIONS", "ALError", "Campaign", "DEFAULT_KAPPA", "FinishResult", "ORACLES",
           "StepResult", "Target", "export", "finish", "get", "ingest_file", "proposals", "run",
           "screen", "screen_campaign", "start", "status", "step", "training_set"]
