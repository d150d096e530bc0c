-- Which distinct compositions have the generators produced, are they novel (not in `known`),
-- chemically valid (the default oxidation-state set's checker), and what do the latest predictions say?
-- Each predicted column names the model version it came from (pred_*_model): when two versions
-- predicted, the latest run's value is shown, with its version, never an unnamed mix.
-- depends: composition_validity, known, model_refs
-- key: composition_id
WITH g AS (
    SELECT gen.composition_id,
           min(gen.run_id) AS first_run,
           count(*) AS times_generated,
           list(DISTINCT mv.ref ORDER BY mv.ref) AS generated_by
    FROM generated gen
    JOIN runs r USING (run_id)
    LEFT JOIN model_refs mv ON mv.model_id = r.model_id
    GROUP BY gen.composition_id
),
v AS (  -- the default oxidation-state set's checker (validity_checkers), as composition_validity
    SELECT composition_id,
           bool_or(charge_neutral) AS charge_neutral,
           bool_or(electronegativity_balanced) AS electronegativity_balanced,
           bool_or(smact_valid) AS smact_valid,
           any_value(ions) AS ions
    FROM composition_validity
    GROUP BY composition_id
),
p AS (  -- latest prediction per property: the highest run id (then model id)
    SELECT composition_id,
           arg_max(value, [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'formation_energy_per_atom') AS pred_formation_energy_per_atom,
           arg_max(model_id, [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'formation_energy_per_atom') AS fe_model_id,
           arg_max(value, [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'band_gap') AS pred_band_gap,
           arg_max(model_id, [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'band_gap') AS bg_model_id,
           arg_max(value, [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'energy_above_hull') AS pred_energy_above_hull,
           list(DISTINCT model_id ORDER BY model_id) AS predicted_by
    FROM predictions
    GROUP BY composition_id
)
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       g.first_run,
       g.times_generated,
       k.composition_id IS NULL AS novel,
       k.sources AS known_in,
       v.charge_neutral,
       v.electronegativity_balanced,
       v.smact_valid,
       v.charge_neutral AND v.electronegativity_balanced AS valid,
       v.ions,
       p.pred_formation_energy_per_atom,
       fm.ref AS pred_formation_energy_model,
       p.pred_band_gap,
       bm.ref AS pred_band_gap_model,
       p.pred_energy_above_hull,
       g.generated_by,
       p.predicted_by
FROM g
JOIN compositions c USING (composition_id)
LEFT JOIN known k USING (composition_id)
LEFT JOIN v USING (composition_id)
LEFT JOIN p USING (composition_id)
LEFT JOIN model_refs fm ON fm.model_id = p.fe_model_id
LEFT JOIN model_refs bm ON bm.model_id = p.bg_model_id
