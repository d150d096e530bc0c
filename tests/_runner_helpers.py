"""Helpers for the runner/predict/view tests: real compositions into a store, a replay generator."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from matstore import compositions
from matstore.store import Store, append


def load_compositions(store: Store, formulas: list[str], source: str = "mp",
                      values: list[float] | None = None, prop: str = "formation_energy_per_atom",
                      ingest_id: int = 1) -> pl.DataFrame:
    """Parse formulas and append compositions/materials(/properties) rows; returns the rows."""
    comps = [compositions.try_parse(f) for f in formulas]
    keep = [i for i, c in enumerate(comps) if not isinstance(c, str)]
    comps = [comps[i] for i in keep]
    uniq = {c.composition_id: c for c in comps}
    cdf = pl.DataFrame({"composition_id": list(uniq),
                        "formula": [c.formula for c in uniq.values()],
                        "elements": [list(c.elements) for c in uniq.values()],
                        "counts": pl.Series([list(c.counts) for c in uniq.values()], dtype=pl.List(pl.Int32)),
                        "n_elements": [c.n_elements for c in uniq.values()],
                        "n_atoms": [c.n_atoms for c in uniq.values()]})
    mids = [hash((source, i)) & ((1 << 62) - 1) for i in keep]
    mdf = pl.DataFrame({"material_id": mids, "ingest_id": ingest_id, "source": source,
                        "external_id": [f"{source}#{i}" for i in keep],
                        "composition_id": [c.composition_id for c in comps],
                        "raw_formula": [formulas[i] for i in keep]})
    with store.transaction() as con:
        known = {r[0] for r in con.execute("SELECT composition_id FROM compositions").fetchall()}
        append(con, "compositions", cdf.filter(~pl.col("composition_id").is_in(list(known))))
        append(con, "materials", mdf)
        if values is not None:
            append(con, "properties", pl.DataFrame({
                "material_id": mids, "composition_id": [c.composition_id for c in comps],
                "name": prop, "value": [float(values[i]) for i in keep], "unit": "eV/atom"}))
    return mdf


class ReplayGenerator:
    """A stand-in generator with the LoadedModel face: maps of real compositions, some with an
    extra element cell (mostly novel compositions) and some blank (undecodable). Deterministic
    given the torch.Generator, like a real GAN."""

    kind = "wgan"
    latent_dim = 4

    def __init__(self, formulas: list[str], model_id: int = 1, fail_after: int | None = None):
        from matstore.features import onehot

        batch = compositions.CompositionBatch.from_formulas(formulas)
        maps, ok = onehot.encode(batch)
        self.maps = torch.as_tensor(maps[ok])
        self.model_id = model_id
        self.ref = f"replay@{model_id}"
        self.calls = 0
        self.fail_after = fail_after

    def sample(self, n, generator, device):
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


def mp_formulas(read_formulas, n: int, offset: int = 0) -> tuple[list[str], np.ndarray]:
    df = read_formulas("mp/e_form.csv")  # the file is sorted by target: take a seeded shuffle
    df = df.sample(fraction=1.0, shuffle=True, seed=0).slice(offset, n)
    return df["formula"].to_list(), df[df.columns[1]].to_numpy()
