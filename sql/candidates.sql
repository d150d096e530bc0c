-- Which distinct compositions have the generators produced, are they novel (not in `known`),
-- chemically valid (the default oxidation-state set's checker), and what do the latest predictions say?
-- Each predicted column names the model version it came from (pred_*_model): when two versions
-- predicted, the latest run's value is shown, with its version, never an unnamed mix; its _std
-- (an ensemble's spread, NULL for one model) and p_metal (two-stage band gaps) come from that row.
-- rarest_ion(_share): the assignment's least ICSD-reported ion (ion_plausibility). A two-stage
-- band-gap model's gap is 0 where its p_metal >= 0.5 (the ensemble mean of the members' gaps is not).
-- depends: composition_validity, ion_plausibility, known, model_refs
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
p AS (  -- latest prediction per property: the highest run id (then model id); value, std, p_metal
        -- and model id taken from that one row together (a struct), so a NULL value or std of the
        -- latest version never lets an older version's number through under the latest's name
    SELECT composition_id,
           arg_max({'value': value, 'std': std, 'p_metal': p_metal, 'model_id': model_id},
                   [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'formation_energy_per_atom') AS fe,
           arg_max({'value': value, 'std': std, 'p_metal': p_metal, 'model_id': model_id},
                   [coalesce(run_id, 0), model_id]) FILTER (WHERE property = 'band_gap') AS bg,
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
       ip.rarest_ion,
       ip.rarest_ion_share,
       p.fe.value AS pred_formation_energy_per_atom,
       p.fe.std AS pred_formation_energy_std,
       fm.ref AS pred_formation_energy_model,
       CASE WHEN p.bg.p_metal >= 0.5 THEN 0.0 ELSE p.bg.value END AS pred_band_gap,
       p.bg.std AS pred_band_gap_std,
       p.bg.p_metal AS pred_band_gap_p_metal,
       bm.ref AS pred_band_gap_model,
       p.pred_energy_above_hull,
       g.generated_by,
       p.predicted_by
FROM g
JOIN compositions c USING (composition_id)
LEFT JOIN known k USING (composition_id)
LEFT JOIN v USING (composition_id)
LEFT JOIN ion_plausibility ip USING (composition_id)
LEFT JOIN p USING (composition_id)
LEFT JOIN model_refs fm ON fm.model_id = p.fe.model_id
LEFT JOIN model_refs bm ON bm.model_id = p.bg.model_id
