"""A stand-in generator for tests and benchmarks (tests/, benchmarks/crash.py, benchmarks/generate.py
share it): it replays real compositions as one-hot maps, with the duplicate/new/undecodable mix a
trained GAN produces, deterministically given the torch.Generator, as a real GAN is."""

from __future__ import annotations


class ReplayGenerator:
    """The LoadedModel face of a generator (kind, model_id, ref, sample): maps of real
    compositions, 30% with an extra element cell (mostly novel compositions) and 10% blank
    (undecodable). fail_after: calls after which sample() raises KeyboardInterrupt (a user's ^C)."""

    kind = "wgan"
    latent_dim = 4

    def __init__(self, formulas: list[str], model_id: int = 1, fail_after: int | None = None):
        import torch  # noqa: PLC0415

        from .compositions import CompositionBatch  # noqa: PLC0415
        from .features import onehot  # noqa: PLC0415

        maps, ok = onehot.encode(CompositionBatch.from_formulas(formulas))
        self.maps = torch.as_tensor(maps[ok])
        self.model_id = model_id
        self.ref = f"replay@{model_id}"
        self.calls = 0
        self.fail_after = fail_after

    def sample(self, n, generator, device):
        import torch  # noqa: PLC0415

        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interrupt")
        idx = torch.randint(len(self.maps), (n,), generator=generator)
        out = self.maps[idx].clone()
        u = torch.rand(n, generator=generator)
        cell_j = torch.randint(0, 3, (n,), generator=generator)
        cell_e = torch.randint(0, 85, (n,), generator=generator)
        add = u < 0.3
        out[add.nonzero().squeeze(1), cell_j[add], cell_e[add]] = 0.95
        out[u > 0.9] = 0.0
        return out.to(device)
