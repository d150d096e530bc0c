"""CHGNet (chgnet 0.4.2, the 0.3.0 MPtrj weights in its wheel), batched: one forward pass for many
structures (CHGNet.predict_graph over their crystal graphs)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Prediction, voigt
from .spec import MP2020, PotentialError, PotentialSpec

SPEC = PotentialSpec(
    name="chgnet-0.3.0", package="chgnet", module="chgnet",
    weights="pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar", convention=MP2020,
    description="CHGNet 0.3.0 (Deng et al. 2023), charge-informed graph network fitted to MPtrj",
    aliases=("chgnet",))


def load_module(spec: PotentialSpec = SPEC):
    """The CHGNet module, its checkpoint read with torch's weights_only loader (the package's own
    loader unpickles freely)."""
    spec.require()
    import torch  # noqa: PLC0415
    from chgnet.model import CHGNet  # noqa: PLC0415

    path = spec.weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = CHGNet.from_dict(state["model"], mlp_out_bias=False, version="0.3.0")
    except Exception as e:  # noqa: BLE001 - any failure here is a broken install
        raise PotentialError(f"potential {spec.name}: cannot load {path}: {e}") from None
    model.eval()
    model.graph_converter.set_isolated_atom_response("error")
    return model


class CHGNetPotential:
    spec = SPEC

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.model = load_module(self.spec).to(device)

    def predict(self, atoms_list: Sequence) -> list[Prediction]:
        """Energy, forces and stress of every structure, in one batched forward pass."""
        from ase import units  # noqa: PLC0415
        from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

        out: list[Prediction | None] = [None] * len(atoms_list)
        graphs, where = [], []
        for i, atoms in enumerate(atoms_list):
            try:
                graphs.append(self.model.graph_converter(AseAtomsAdaptor.get_structure(atoms)))
                where.append(i)
            except Exception as e:  # noqa: BLE001 - e.g. an isolated atom: this structure only
                out[i] = Prediction.failed(len(atoms), f"chgnet graph: {e}")
        if graphs:
            preds = self.model.predict_graph([g.to(self.device) for g in graphs], task="efs",
                                             batch_size=len(graphs))
            preds = [preds] if isinstance(preds, dict) else preds
            for i, p in zip(where, preds):
                n = len(atoms_list[i])
                # intensive energy (eV/atom) -> cell; stress GPa -> eV/Å^3 (as CHGNetCalculator)
                out[i] = Prediction(float(p["e"]) * n, np.asarray(p["f"], float),
                                    voigt(np.asarray(p["s"], float) * units.GPa))
        return out

    def calculator(self):
        """The package's own ASE calculator over a separate copy of the module (the one-at-a-time
        reference the batched relaxation is tested against)."""
        from chgnet.model.dynamics import CHGNetCalculator  # noqa: PLC0415

        return CHGNetCalculator(model=load_module(self.spec), use_device=self.device)

