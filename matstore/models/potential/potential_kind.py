"""The ML potentials as a model family (models.family protocol), kind 'potential': neither a
composition generator nor a property predictor; `relax` and `relax-stability` use it. Its weights
are not stored in the store (they stay in the installed wheel, checked against the wheel's RECORD):
a version's config is the potential's identity, and loading a version loads the installed
potential only when its weights are the ones the version names (same sha256)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import WeightsError
from ..family import ModelFamily, register

KIND = "potential"


@dataclass
class PotentialIdentity:
    """What a potential version is (spec.identity()): which potential, package and weights file."""

    potential: str
    package: str
    package_version: str
    weights_file: str
    weights_sha256: str
    sha256_in_wheel_record: bool = False
    convention: str = ""
    energy_unit: str = "eV/atom"

    def to_dict(self) -> dict:
        return asdict(self)


def _installed(identity: PotentialIdentity):
    from . import load  # noqa: PLC0415  (chgnet/sevenn are imported only when a potential is loaded)

    return load(identity.potential)


class PotentialFamily(ModelFamily):
    name = KIND
    config = PotentialIdentity
    module = staticmethod(_installed)
    inputs = "structure"
    weights_in_store = False

    def load(self, weights, record: dict, members, ref: str):
        from . import resolve  # noqa: PLC0415

        want = self.make_config(record["config"])
        have = resolve(want.potential).identity()   # the installed file, checked against its RECORD
        if have["weights_sha256"] != record.get("weights_sha256"):
            raise WeightsError(f"model {ref}: the installed {want.package} {have['package_version']} "
                               f"weights (sha256 {have['weights_sha256'][:12]}) are not this version's "
                               f"({str(record.get('weights_sha256'))[:12]}); install {want.package} "
                               f"{want.package_version}")
        return _installed(want)

    def card(self, config, hyperparams: dict) -> dict:
        c = self.make_config(config)
        return {"inputs": {"featurizer": "structure", "shape": None, "labels": None,
                           "meaning": "crystal structure (lattice, species, positions)"},
                "outputs": "energy (eV), forces (eV/Å), stress (eV/Å^3)", "target": None,
                "energy_convention": c.convention,
                "weights": f"{c.weights_file} in the {c.package} {c.package_version} wheel (not stored here)"}


register(PotentialFamily())
