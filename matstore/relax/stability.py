"""Structure-based stability: energies of relaxed structures, one potential, one convention.

`structure_stability(store, potential)`:
1. elemental references: every element of the relaxed compositions needs one; an element without
   a converged relaxed single-element structure under this potential gets the candidates of
   references.py written as structures (origin known, method = their source) and relaxed with the
   same potential (a molecule in its box with the cell fixed). An element's reference energy is the
   lowest converged energy per atom of its structures under this potential, whatever their origin.
2. reference phases: the lowest converged relaxed energy of each composition whose input was a
   known structure (origin known: ingested from a source, or an elemental reference).
3. every composition with a converged relaxation under this potential: its lowest-energy
   polymorph (any origin) is placed against the hull of the reference phases of its chemical
   system (hull.Hull, pymatgen PhaseDiagram) -> one `stability` row (model_id = the potential,
   reference = 'relaxed-known', structure_id = that polymorph, convention, reference_structures =
   the relaxed structures whose energies made its system's hull). The rows of this potential and
   reference are replaced as a whole in one transaction, under a runs row of kind 'stability'.
Energies from composition models or other potentials never enter: one model_id throughout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import polars as pl

from .. import runs
from ..compositions import parse
from ..store import Store, append, frame
from . import references
from .engine import RelaxSettings
from .errors import RelaxError
from .hull import Hull, Phase

REFERENCE = "relaxed-known"
_ENERGIES = """
    SELECT r.structure_id AS input_id, r.relaxed_structure_id, r.energy_per_atom, r.composition_id,
           c.formula, c.elements, i.origin AS input_origin, i.method AS input_method
    FROM relaxations r JOIN structures i ON i.structure_id = r.structure_id
    JOIN compositions c ON c.composition_id = r.composition_id
    WHERE r.model_id = ? AND r.status = 'converged' AND r.relaxed_structure_id IS NOT NULL
    ORDER BY r.composition_id, r.energy_per_atom, r.relaxed_structure_id"""


@dataclass
class StabilityRun:
    run_id: int
    model_id: int
    n_compositions: int
    n_on_or_below_hull: int
    elements: dict          # element -> (energy per atom, structure id, source)
    missing: list           # compositions not placed: elements without a reference
    seconds: float


def energies(store: Store, model_id: int) -> pl.DataFrame:
    with store.connect() as con:
        return frame(con, _ENERGIES, [int(model_id)])


def ensure_elements(store: Store, model_id: int, potential: str, elements: set[str],
                    settings: RelaxSettings, batch: int, show_progress: bool, loaded=None) -> None:
    """Write and relax the reference candidates of every element lacking a converged one."""
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    from ..structures import write_structures  # noqa: PLC0415
    from .run import relax_structures  # noqa: PLC0415

    df = energies(store, model_id)
    have = {els[0] for els in df.filter(pl.col("elements").list.len() == 1)["elements"].to_list()}
    todo = sorted(elements - have)
    if not todo:
        return
    ids = {True: [], False: []}
    for el in todo:
        for source, atoms in references.candidates(el):
            sid = write_structures(store, [AseAtomsAdaptor.get_structure(atoms)], "known", source,
                                   details={"elemental_reference": el, "source": source,
                                            "builder": "ase.build.bulk / ase.data.reference_states"
                                            if source == "ase-reference-state" else "matstore.relax.references"})
            ids[references.relaxes_cell(source)] += sid
    for cell, sids in ids.items():
        if sids:
            s = RelaxSettings(**{**{k: getattr(settings, k) for k in RelaxSettings.__dataclass_fields__},
                                 "relax_cell": cell})
            relax_structures(store, "s.structure_id IN (" + ", ".join(str(int(i)) for i in sids) + ")",
                             potential, s, batch=batch, show_progress=show_progress, loaded=loaded)


def structure_stability(store: Store, potential: str | None = None, settings: RelaxSettings = RelaxSettings(),
                        batch: int = 16, show_progress: bool = False, loaded=None) -> StabilityRun:
    """Place every composition's lowest relaxed polymorph on the hull (module docstring)."""
    from ..models import potential as potentials  # noqa: PLC0415
    from ..models.potential.registry import register  # noqa: PLC0415

    t0 = time.perf_counter()
    spec = potentials.resolve(potential)
    model_id, ref = register(store, spec.name)
    df = energies(store, model_id)
    if df.height == 0:
        raise RelaxError(f"no converged relaxation with {ref} in {store.path}; run `matstore relax` first")
    needed = {e for els in df["elements"].to_list() for e in els}
    ensure_elements(store, model_id, spec.name, needed, settings, batch, show_progress, loaded)
    df = energies(store, model_id)
    single = df.filter(pl.col("elements").list.len() == 1)
    elements = {}
    for r in single.iter_rows(named=True):   # sorted by energy: the first per element is its lowest
        elements.setdefault(r["elements"][0], (r["energy_per_atom"], r["relaxed_structure_id"], r["input_method"]))
    lowest = df.unique("composition_id", keep="first", maintain_order=True)
    known = df.filter(pl.col("input_origin") == "known").unique("composition_id", keep="first", maintain_order=True)
    hull = Hull([Phase(r["relaxed_structure_id"], r["formula"], r["energy_per_atom"])
                 for r in known.filter(pl.col("elements").list.len() > 1).iter_rows(named=True)],
                {el: e for el, (e, _, _) in elements.items()})
    by_system: dict[frozenset, list[int]] = {}
    for r in known.iter_rows(named=True):
        by_system.setdefault(frozenset(r["elements"]), []).append(r["relaxed_structure_id"])
    rows, missing = [], []
    for r in lowest.iter_rows(named=True):
        if hull.missing(r["formula"]):
            missing.append(r["formula"])
            continue
        placed = hull.place(Phase(r["relaxed_structure_id"], r["formula"], r["energy_per_atom"]))
        system = frozenset(r["elements"])
        refs = sorted({sid for els, sids in by_system.items() if els <= system for sid in sids}
                      | {elements[e][1] for e in system})
        rows.append({"composition_id": r["composition_id"], "structure_id": r["relaxed_structure_id"],
                     "formation_energy_per_atom": placed.formation_energy_per_atom,
                     "e_above_hull": placed.e_above_hull, "hull_energy_per_atom": placed.hull_energy_per_atom,
                     "decomposition": [{"composition_id": parse(f).composition_id, "formula": f, "fraction": x}
                                       for _, f, x in placed.decomposition],
                     "reference_structures": refs})
    convention = (f"{spec.convention}; formation energies against the lowest relaxed energy per "
                  f"element under {ref} (sources: " + ", ".join(sorted({s for _, _, s in elements.values()})) + ")")
    run_id = runs.open_run(store, "stability", model_id, {"potential": ref, "reference": REFERENCE,
                                                          "convention": convention,
                                                          "elements": {k: list(v) for k, v in elements.items()}},
                           None, len(rows))
    with runs.tracked(store, run_id):
        out = pl.DataFrame(rows, schema={
            "composition_id": pl.Int64, "structure_id": pl.Int64, "formation_energy_per_atom": pl.Float64,
            "e_above_hull": pl.Float64, "hull_energy_per_atom": pl.Float64,
            "decomposition": pl.List(pl.Struct({"composition_id": pl.Int64, "formula": pl.Utf8, "fraction": pl.Float64})),
            "reference_structures": pl.List(pl.Int64)}).with_columns(
            pl.lit(model_id, pl.Int32).alias("model_id"), pl.lit(REFERENCE).alias("reference"),
            pl.lit(run_id, pl.Int32).alias("run_id"), pl.lit(convention).alias("convention"))
        with store.transaction() as con:
            con.execute("DELETE FROM stability WHERE model_id = ? AND reference = ?", [model_id, REFERENCE])
            append(con, "stability", out)
            runs.count(con, run_id, out.height, out.height / max(time.perf_counter() - t0, 1e-9))
    n_ok = int((out["e_above_hull"] <= 1e-9).sum()) if out.height else 0
    return StabilityRun(run_id, model_id, out.height, n_ok, elements, missing, time.perf_counter() - t0)

