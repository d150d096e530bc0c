"""Self-consistent hulls: reference phases whose energies come from the same model as the candidates.

A candidate's predicted energy compared with DFT energies carries the model's whole systematic
error; compared with the same model's energies for the known phases, much of it cancels. Two
hulls besides the DFT one (hull option of `stability.compute`, reference named after it):

- "mixed" (reference 'SOURCE+model'): the source's DFT phases, plus every known composition
  (view `known`, any source) without a formation energy in SOURCE, at the model's predicted
  energy: the hull where the reference has a gap (band-gap-only compositions) is no longer the
  elements' tie plane;
- "model" (reference 'SOURCE:model'): the source's phases, each at the model's predicted energy.

Each stability row says how many of its decomposition phases are DFT and how many predicted
(products_dft / products_predicted; an element counts as DFT: its reference is min(0, entry), and
the mixed hull adds no predicted element). The model's predictions of the reference compositions are
made (and stored, as predictions of that version) when missing.
"""

from __future__ import annotations

import numpy as np

from ..store import Store

HULLS = ("dft", "mixed", "model")
SUFFIX = {"mixed": "+model", "model": ":model"}
PROPERTY = "formation_energy_per_atom"

_DFT = ("SELECT p.composition_id, min(p.value) AS energy FROM properties p JOIN materials m USING "
        "(material_id) WHERE m.source = ? AND p.name = ? AND p.value IS NOT NULL AND isfinite(p.value) "
        "GROUP BY p.composition_id")
_GAPS = ("SELECT k.composition_id FROM known k WHERE k.composition_id NOT IN "
         "(SELECT p.composition_id FROM properties p JOIN materials m USING (material_id) "
         "WHERE m.source = ? AND p.name = ? AND p.value IS NOT NULL)")


def reference_name(source: str, hull: str) -> str:
    return source + SUFFIX.get(hull, "")


def _predict_missing(store: Store, model_ref: str, model_id: int, source: str, hull: str,
                     progress: bool) -> None:
    from ..predict import predict  # noqa: PLC0415

    if hull == "model":
        where = ("c.composition_id IN (SELECT m.composition_id FROM materials m JOIN properties p "
                 "USING (material_id) WHERE m.source = $source AND p.name = $prop)")
    else:
        where = ("c.composition_id IN (SELECT k.composition_id FROM known k) AND c.composition_id NOT IN "
                 "(SELECT p.composition_id FROM properties p JOIN materials m USING (material_id) "
                 "WHERE m.source = $source AND p.name = $prop AND p.value IS NOT NULL)")
    predict(store, model_ref, where=where, params={"source": source, "prop": PROPERTY},
            progress=progress)


def phases(store: Store, source: str, hull: str, model_ref: str, model_id: int,
           progress: bool = True):
    """Arrow table (composition_id, elements, counts, energy, formula, predicted) of the hull's
    phases under option hull ('mixed' or 'model') of model_id."""
    _predict_missing(store, model_ref, model_id, source, hull, progress)
    pred = ("SELECT composition_id, min(value) AS energy FROM predictions WHERE model_id = ? "
            "AND property = ? AND value IS NOT NULL AND isfinite(value) GROUP BY composition_id")
    if hull == "model":
        sql = (f"WITH d AS ({_DFT}), q AS ({pred}) SELECT q.composition_id, q.energy, TRUE AS predicted "
               f"FROM q JOIN d USING (composition_id)")
        params = [source, PROPERTY, model_id, PROPERTY]
    else:
        sql = (f"WITH d AS ({_DFT}), q AS ({pred}) SELECT composition_id, energy, FALSE AS predicted FROM d "
               f"UNION ALL SELECT q.composition_id, q.energy, TRUE FROM q WHERE q.composition_id IN ({_GAPS}) "
               f"AND q.composition_id IN (SELECT composition_id FROM compositions WHERE n_elements >= 2)")
        params = [source, PROPERTY, model_id, PROPERTY, source, PROPERTY]
    with store.connect() as con:
        return con.sql(f"SELECT x.composition_id, c.elements, c.counts, x.energy, c.formula, x.predicted "
                       f"FROM ({sql}) x JOIN compositions c USING (composition_id) "
                       f"ORDER BY x.composition_id", params=params).to_arrow_table()


def predicted_mask(phase_ids: np.ndarray, table) -> np.ndarray:
    """Per hull phase (Hulls.phase_ids order): whether its energy is a prediction."""
    ids = table.column("composition_id").to_numpy()
    pred = table.column("predicted").to_numpy(zero_copy_only=False).astype(bool)
    return np.isin(phase_ids, ids[pred])
