"""SevenNet (sevenn 0.13.0, the 7net-0 and 7net-l3i5 checkpoints in its wheel), batched: the graphs
of many structures collated into one torch_geometric batch, one forward pass."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Prediction
from .spec import MP2020, PotentialError, PotentialSpec

SPECS = {s.name: s for s in [
    PotentialSpec(name="sevennet-0", package="sevenn", module="sevenn",
                  weights="pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
                  convention=MP2020, aliases=("7net-0", "sevennet"),
                  description="SevenNet-0 (11Jul2024), NequIP-style equivariant network fitted to MPtrj"),
    PotentialSpec(name="sevennet-l3i5", package="sevenn", module="sevenn",
                  weights="pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth",
                  convention=MP2020, aliases=("7net-l3i5",),
                  description="SevenNet-l3i5: lmax 3, 5 interaction layers, fitted to MPtrj"),
]}
# what a SevenNet checkpoint holds besides tensors: numpy arrays, pickled under numpy 1 names
# (torch's weights_only loader refuses them unless allowed; these rebuild an ndarray, nothing else)
def _safe_globals() -> list:
    import numpy  # noqa: PLC0415

    reconstruct = numpy.ndarray.__reduce__(numpy.zeros(1))[0]   # numpy's own _reconstruct
    dtypes = [type(numpy.dtype(t)) for t in ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u1", "b1")]
    return [(reconstruct, "numpy.core.multiarray._reconstruct"), numpy.ndarray, numpy.dtype, *dtypes]


def load_checkpoint(spec: PotentialSpec):
    """A sevenn SevenNetCheckpoint whose file was read with torch's weights_only loader (the
    package's own reads it with weights_only=False)."""
    spec.require()
    import torch  # noqa: PLC0415
    from sevenn.checkpoint import SevenNetCheckpoint  # noqa: PLC0415

    path = spec.weights_path()
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            cp_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here is a broken install
        raise PotentialError(f"potential {spec.name}: cannot load {path}: {e}") from None

    class SafeCheckpoint(SevenNetCheckpoint):
        def _load(self) -> None:   # the package's loader, fed the dict read above
            import sevenn.checkpoint as cpm  # noqa: PLC0415

            self._config_original = cp_dict.get("config", {})
            self._model_state_dict = cp_dict.get("model_state_dict", {})
            self._optimizer_state_dict = {}
            self._scheduler_state_dict = {}
            self._epoch = cp_dict.get("epoch")
            self._time = cp_dict.get("time", "Not found")
            self._hash = cp_dict.get("hash", "Not found")
            self._config = cpm._config_cp_routine(self._config_original)   # sevenn's own routine
            self._loaded = True

    return SafeCheckpoint(path)


class SevenNetPotential:
    def __init__(self, name: str = "sevennet-0", device: str = "cpu"):
        if name not in SPECS:
            raise PotentialError(f"unknown SevenNet potential {name!r} (known: {', '.join(SPECS)})")
        self.spec = SPECS[name]
        self.device = device
        cp = load_checkpoint(self.spec)
        self.model = cp.build_model()
        self.model.set_is_batch_data(True)
        self.model.to(device).eval()
        self.cutoff = float(cp.config["cutoff"])
        self.type_map = dict(cp.config["_type_map"])

    def predict(self, atoms_list: Sequence) -> list[Prediction]:
        import sevenn._keys as KEY  # noqa: PLC0415
        from sevenn.atom_graph_data import AtomGraphData  # noqa: PLC0415
        from sevenn.train.dataload import unlabeled_atoms_to_graph  # noqa: PLC0415
        from torch_geometric.data import Batch  # noqa: PLC0415

        out: list[Prediction | None] = [None] * len(atoms_list)
        graphs, where = [], []
        for i, atoms in enumerate(atoms_list):
            unknown = sorted(set(int(z) for z in atoms.numbers) - set(self.type_map))
            if unknown:
                out[i] = Prediction.failed(len(atoms), f"{self.spec.name} has no element(s) Z={unknown}")
                continue
            graphs.append(AtomGraphData.from_numpy_dict(
                unlabeled_atoms_to_graph(atoms, self.cutoff, with_shift=False)))
            where.append(i)
        if not graphs:
            return out
        batch = Batch.from_data_list(graphs).to(self.device)
        res = self.model(batch)
        energy = res[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
        forces = res[KEY.PRED_FORCE].detach().cpu().numpy()
        # SevenNet's stress (xx yy zz xy yz zx, compressive positive) -> ASE Voigt, as its calculator
        stress = -res[KEY.PRED_STRESS].detach().cpu().numpy().reshape(len(graphs), 6)[:, [0, 1, 2, 4, 5, 3]]
        start = 0
        for k, i in enumerate(where):
            n = len(atoms_list[i])
            out[i] = Prediction(float(energy[k]), forces[start:start + n].astype(float), stress[k].astype(float))
            start += n
        return out

    def calculator(self):
        """sevenn's own ASE calculator over a separate copy of the module (the one-at-a-time reference)."""
        from sevenn.calculator import SevenNetCalculator  # noqa: PLC0415

        model = load_checkpoint(self.spec).build_model()
        return SevenNetCalculator(model=model, file_type="model_instance", device=self.device)
