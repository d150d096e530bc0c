"""Universal ML interatomic potentials as a model family: CHGNet (default) and SevenNet.

    pot = potential.load("chgnet")           # or "sevennet-0", "sevennet-l3i5" (aliases: 7net-0, ...)
    preds = pot.predict([atoms, ...])        # one batched forward pass -> [Prediction]
    pot.spec.identity()                      # package, version, weights sha256, energy convention

Weights load from the installed wheel only, never the network (see spec.py); registering a
potential as a model version of a store is ``register`` (registry.py). A missing package is a
PotentialError naming the pip extra ``matstore[potentials]``.
"""

from __future__ import annotations

from .base import Prediction
from .chgnet import SPEC as CHGNET_SPEC
from .sevennet import SPECS as SEVENNET_SPECS
from .spec import EXTRA, MP2020, PotentialError, PotentialSpec
from . import potential_kind  # noqa: E402,F401  (registers kind "potential" in models.KINDS)

DEFAULT = "chgnet-0.3.0"
SPECS: dict[str, PotentialSpec] = {CHGNET_SPEC.name: CHGNET_SPEC, **SEVENNET_SPECS}
ALIASES = {alias: s.name for s in SPECS.values() for alias in (s.name, *s.aliases)}


def resolve(name: str | None) -> PotentialSpec:
    """A potential's spec by name or alias (None: the default, CHGNet)."""
    key = ALIASES.get((name or DEFAULT).lower())
    if key is None:
        raise PotentialError(f"unknown potential {name!r} (known: {', '.join(sorted(ALIASES))})")
    return SPECS[key]


def load(name: str | None = None, device: str = "cpu"):
    """The potential, ready to predict (its weights checked against the wheel's RECORD)."""
    spec = resolve(name)
    spec.identity()
    if spec.package == "chgnet":
        from .chgnet import CHGNetPotential  # noqa: PLC0415

        return CHGNetPotential(device)
    from .sevennet import SevenNetPotential  # noqa: PLC0415

    return SevenNetPotential(spec.name, device)


__all__ = ["DEFAULT", "EXTRA", "MP2020", "SPECS", "Prediction", "PotentialError", "PotentialSpec",
           "load", "resolve"]
