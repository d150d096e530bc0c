"""A formation-energy model's own error on the hull, measured on known phases.

A screen ranks candidates by a predicted e_above_hull; a model that places known ground states
+0.6 eV/atom above their hull, or whose error depends on the anion, makes that ranking say more
about the model than about the chemistry. `measure` predicts the reference's own phases that the
model version did not train on (composition_sets roles train/val), places them on the same DFT
hull as the candidates (stability rows of that model), and returns the view `model_bias`: the
error (predicted minus DFT e_above_hull) overall, by number of elements and by anion family.
The per-phase rows stay in the store, so every screen shows the numbers beside its hits.
"""

from __future__ import annotations

import polars as pl

from ..store import Store

_KNOWN_NOT_TRAINED = (
    "c.composition_id IN (SELECT m.composition_id FROM materials m WHERE m.source = $reference) "
    "AND NOT EXISTS (SELECT 1 FROM composition_sets t WHERE t.model_id = $model_id "
    "AND t.composition_id = c.composition_id AND t.role IN ('train', 'val'))")


def measure(store: Store, model, reference: str | None = None, device: str | None = None,
            progress: bool = True) -> pl.DataFrame:
    """model_bias rows of model (a formation-energy predictor reference) on reference's phases."""
    from ..predict import predict  # noqa: PLC0415
    from . import compute, default_reference, resolve_model  # noqa: PLC0415

    reference = reference or default_reference(store)
    model_id, ref = resolve_model(store, model)
    compute(store, reference=reference, progress=progress)          # the DFT e_above_hull
    predict(store, ref, where=_KNOWN_NOT_TRAINED, params={"reference": reference, "model_id": model_id},
            device=device, progress=progress)
    compute(store, model=ref, reference=reference, progress=progress)
    return store.query("SELECT * FROM model_bias WHERE model_id = ? AND reference = ? "
                       "ORDER BY grouping, group_value", [model_id, reference])
