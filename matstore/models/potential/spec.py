"""What a potential is: the package and file its weights come from, and the energies it predicts.

Weights load only from the installed wheel (never from the network): the file named here, checked
against the sha256 the wheel's RECORD gives for it, then read with torch's restricted unpickler.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ...errors import MatstoreError

EXTRA = "matstore[potentials]"   # the pip extra that installs chgnet and sevenn
# Every pretrained potential here was fitted to MPtrj: PBE/PBE+U VASP energies of Materials Project
# relaxations with MaterialsProject2020Compatibility corrections applied (chgnet README, "Notes
# for Training" 2; SevenNet-0 and -l3i5 are trained on the same MPtrj set).
MP2020 = "MP2020-compatible: PBE/PBE+U total energy with MaterialsProject2020Compatibility corrections (MPtrj)"


class PotentialError(MatstoreError, RuntimeError):
    """A potential that cannot be loaded or used; the message names it and says why."""


@dataclass(frozen=True)
class PotentialSpec:
    name: str            # the model_versions name, e.g. chgnet-0.3.0
    package: str         # the pip distribution that ships the weights
    module: str          # its import name
    weights: str         # the weights file, relative to the module's folder
    convention: str      # what its energies are (MP2020 above)
    description: str
    aliases: tuple[str, ...] = ()

    def require(self) -> None:
        """Raise a PotentialError naming the pip extra when the package is not installed."""
        if importlib.util.find_spec(self.module) is None:
            raise PotentialError(f"potential {self.name} needs the {self.package!r} package, which "
                                 f"is not installed: pip install '{EXTRA}'")

    def package_version(self) -> str:
        self.require()
        return importlib.metadata.version(self.package)

    def weights_path(self) -> Path:
        self.require()
        folder = Path(importlib.util.find_spec(self.module).origin).parent
        path = folder / self.weights
        if not path.is_file():
            raise PotentialError(f"potential {self.name}: weights file {path} is missing from the "
                                 f"installed {self.package} {self.package_version()}; reinstall "
                                 f"'{EXTRA}' (weights are never downloaded)")
        return path

    def wheel_sha256(self) -> str | None:
        """The sha256 the installed wheel's RECORD lists for the weights file (hex), None if absent."""
        files = importlib.metadata.distribution(self.package).files or []
        target = f"{self.module}/{self.weights}"
        for f in files:
            if str(f).replace("\\", "/") == target and f.hash is not None and f.hash.mode == "sha256":
                raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
                return raw.hex()
        return None

    def identity(self) -> dict:
        """Package, version, weights file and its sha256 (checked against the wheel's RECORD)."""
        path = self.weights_path()
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        recorded = self.wheel_sha256()
        if recorded is not None and recorded != sha:
            raise PotentialError(f"potential {self.name}: {path} does not match the sha256 its "
                                 f"wheel records ({sha[:12]} != {recorded[:12]}); reinstall '{EXTRA}'")
        return {"potential": self.name, "package": self.package, "package_version": self.package_version(),
                "weights_file": f"{self.module}/{self.weights}", "weights_sha256": sha,
                "sha256_in_wheel_record": recorded is not None, "convention": self.convention,
                "energy_unit": "eV/atom"}
