"""Re-ranking a composition's template predictions by a universal potential's energy.

An option beside the substitution rules (templates.py): the first `top` predictions of
TemplateLibrary.predict (by default the nearest template's two substitutions, e.g. the two A/B
cation orderings of a perovskite) are ordered by the potential's single-point energy per atom,
lowest first, on the substituted, volume-rescaled cells (no relaxation: one batched forward pass
per composition). Each prediction's details record the energy, the potential's name and version
and the rank before re-ranking. benchmarks/csp.py measures what it changes and what it costs.
"""

from __future__ import annotations

import math

DEFAULT_TOP = 2


def energy_rank(predictions: list, potential, top: int = DEFAULT_TOP) -> list:
    """The predictions with the first `top` ordered by energy per atom (a failed evaluation last);
    `potential` is a matstore.models.potential model (predict(list of ase.Atoms))."""
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    head = list(predictions[:top])
    if len(head) < 2 or any(p.method != "template-substitution" for p in head):
        return predictions
    got = potential.predict([AseAtomsAdaptor.get_atoms(p.structure) for p in head])
    energies = [g.energy / len(p.structure) if g.error is None and math.isfinite(g.energy) else math.inf
                for g, p in zip(got, head)]
    order = sorted(range(len(head)), key=lambda i: (energies[i], i))
    name = f"{potential.spec.name} {potential.spec.package_version()}"
    for i, p in enumerate(head):
        p.details["energy_rank"] = {"potential": name, "single_point_energy_per_atom":
                                    None if math.isinf(energies[i]) else round(energies[i], 6),
                                    "rank_before": p.details.get("rank")}
    out = [head[i] for i in order] + list(predictions[len(head):])
    for rank, p in enumerate(out, 1):
        p.details["rank"] = rank
    return out
