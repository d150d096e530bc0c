"""A chemical system's hull from structures, when the store's known structures are a sample.

`system_hull(store, elements, potential, per_composition=k)`:
1. the system's prototype reference phases (prototypes.py: binaries and elements from pymatgen's
   AFLOW library) are written as known structures;
2. the known structures of the system (origin known, not a prototype; at most `screen` per
   composition, the first by structure id: ids are hashes, so a fixed pseudo-random sample) get
   one unrelaxed energy (a single point, one batched potential call per chunk; not stored) and
   the k lowest per composition by that energy are selected: relaxing all of them is hours on a small CPU, and the
   single point of a DFT-relaxed structure ranks its polymorphs well enough to choose which to
   relax (the rule is in the relax run's params);
3. the selection and the prototypes are relaxed (run.relax_structures: relaxations rows, relaxed
   structures linked to their inputs), then stability.structure_stability places every
   composition on the hull of the relaxed known phases and writes the stability rows (potential,
   reference structures, convention).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..store import Store
from . import prototypes
from .engine import RelaxSettings
from .errors import RelaxError

SINGLE_POINT_CHUNK = 32


@dataclass
class SystemHull:
    prototype_ids: list          # structure ids of the prototype phases
    selected: list               # known structure ids relaxed (k lowest per composition)
    single_points: dict          # structure id -> unrelaxed energy per atom (eV/atom)
    relax_run: int
    stability_run: int
    seconds: float


def system_known(store: Store, elements, screen: int | None = None) -> list[tuple[int, int]]:
    """(structure_id, composition_id) of the known structures whose elements are in the system
    (subsystems included), prototypes excluded, in id order; at most `screen` per composition
    (the first by id)."""
    els = sorted(set(elements))
    with store.connect() as con:
        rows = con.execute(
            "SELECT s.structure_id, s.composition_id FROM structures s JOIN compositions c USING (composition_id) "
            "WHERE s.origin = 'known' AND s.method <> ? AND list_has_all(?::VARCHAR[], c.elements) "
            "ORDER BY s.structure_id", [prototypes.METHOD, els]).fetchall()
    if screen is None:
        return rows
    seen: dict[int, int] = {}
    out = []
    for sid, cid in rows:
        seen[cid] = seen.get(cid, 0) + 1
        if seen[cid] <= screen:
            out.append((sid, cid))
    return out


def single_points(pot, store: Store, ids: list[int], progress=None) -> dict[int, float]:
    """Energy per atom of stored structures as they are (one batched call per chunk)."""
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    from ..structures import read_structures  # noqa: PLC0415

    out = {}
    for i in range(0, len(ids), SINGLE_POINT_CHUNK):
        chunk = ids[i:i + SINGLE_POINT_CHUNK]
        structs = read_structures(store, chunk)
        preds = pot.predict([AseAtomsAdaptor.get_atoms(s) for s in structs])
        for sid, s, p in zip(chunk, structs, preds):
            if p.error is None:
                out[sid] = p.energy / len(s)
        if progress is not None:
            progress(len(chunk))
    return out


def lowest_per_composition(known: list[tuple[int, int]], energy: dict[int, float], k: int) -> list[int]:
    """The k lowest-energy structure ids of each composition (ties by id), in id order."""
    by: dict[int, list] = {}
    for sid, cid in known:
        if sid in energy:
            by.setdefault(cid, []).append((energy[sid], sid))
    return sorted(sid for rows in by.values() for _, sid in sorted(rows)[:k])


def system_hull(store: Store, elements, potential: str | None = None, per_composition: int = 1,
                screen: int | None = 4, settings: RelaxSettings = RelaxSettings(max_steps=300), batch: int = 16,
                show_progress: bool = False, loaded=None) -> SystemHull:
    from .. import progress as bars  # noqa: PLC0415
    from ..models import potential as potentials  # noqa: PLC0415
    from .run import relax_structures  # noqa: PLC0415
    from .stability import structure_stability  # noqa: PLC0415

    if not 1 <= int(per_composition) <= 1000 or (screen is not None and not 1 <= int(screen) <= 100_000):
        raise RelaxError(f"per composition {per_composition} relaxed of {screen} screened: must be in 1..1000 "
                         f"and 1..100000")
    t0 = time.perf_counter()
    try:
        proto_ids = prototypes.write_references(store, elements)
    except KeyError as e:
        raise RelaxError(str(e.args[0])) from None
    known = system_known(store, elements, screen)
    if not known:
        raise RelaxError(f"no known {'-'.join(sorted(elements))} structures in {store.path}")
    pot = loaded if loaded is not None else potentials.load(potential)
    if screen is not None and screen <= per_composition:
        energy = {}        # every screened structure is relaxed: nothing to rank
        chosen = sorted(sid for sid, _ in known)
    else:
        with bars.bar(show_progress, "structures") as prog:
            task = prog.add_task("single points", total=len(known))
            energy = single_points(pot, store, [sid for sid, _ in known], lambda n: prog.update(task, advance=n))
        chosen = lowest_per_composition(known, energy, int(per_composition))
    ids = sorted(set(proto_ids) | set(chosen))
    run = relax_structures(store, "s.structure_id IN (" + ", ".join(str(int(i)) for i in ids) + ")",
                           potential, settings, batch=batch, show_progress=show_progress, loaded=pot)
    stab = structure_stability(store, potential, settings, batch=batch, show_progress=show_progress, loaded=pot)
    return SystemHull(proto_ids, chosen, energy, run.run_id, stab.run_id, time.perf_counter() - t0)


def known_hull(store: Store, model_id: int, exclude=()):
    """The hull (energy_hull.Hull) of the lowest converged relaxed energy of every known
    composition under one potential (elements: the lowest of their structures, as
    stability.structure_stability takes them), without the compositions in `exclude` (formulas):
    the seed's setting, where a requested composition is absent from the known phases."""
    import polars as pl  # noqa: PLC0415

    from ..compositions import parse  # noqa: PLC0415
    from .energy_hull import Hull, Phase  # noqa: PLC0415
    from .stability import energies  # noqa: PLC0415

    skip = {parse(f).composition_id for f in exclude}
    df = energies(store, model_id)
    elements = {}
    for r in df.filter(pl.col("elements").list.len() == 1).iter_rows(named=True):  # sorted: lowest first
        elements.setdefault(r["elements"][0], r["energy_per_atom"])
    known = df.filter((pl.col("input_origin") == "known") & (pl.col("elements").list.len() > 1)
                      & ~pl.col("composition_id").is_in(list(skip)))
    known = known.unique("composition_id", keep="first", maintain_order=True)
    return Hull([Phase(r["relaxed_structure_id"], r["formula"], r["energy_per_atom"])
                 for r in known.iter_rows(named=True)], elements)


def place_inputs(store: Store, model_id: int, structure_ids, hull) -> list[dict]:
    """For stored input structures relaxed under the potential: status, energies and the energy
    above `hull` before (the input's unrelaxed energy), after relaxation (converged only) and at
    the last state reached (step_cap / time_limit too: an upper bound of the relaxed one)."""
    from .energy_hull import Phase  # noqa: PLC0415

    ids = [int(i) for i in structure_ids]
    with store.connect() as con:
        rows = con.execute(
            "SELECT r.structure_id, c.formula, r.status, r.initial_energy_per_atom, r.energy_per_atom, r.steps "
            "FROM relaxations r JOIN compositions c USING (composition_id) WHERE r.model_id = ? "
            "AND list_contains(?::BIGINT[], r.structure_id)", [int(model_id), ids]).fetchall()
    out = []
    for sid, formula, status, e0, e1, steps in rows:
        before = hull.place(Phase(sid, formula, e0)).e_above_hull if e0 is not None else None
        last = hull.place(Phase(sid, formula, e1)).e_above_hull if e1 is not None else None
        out.append({"structure_id": sid, "formula": formula, "status": status, "steps": steps,
                    "e_above_hull_before": before, "e_above_hull": last if status == "converged" else None,
                    "e_above_hull_last": last, "energy_per_atom": e1})
    order = {sid: i for i, sid in enumerate(ids)}
    return sorted(out, key=lambda r: order[r["structure_id"]])
