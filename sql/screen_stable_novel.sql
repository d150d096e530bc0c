-- The demo's screen (the builtin data has no band gaps): which novel, chemically valid
-- candidates are predicted to have negative formation energy, most stable first? The latest
-- prediction with its model version (fe_model) and ensemble spread (NULL for one model). Same
-- columns as the hull screens (candidate_hull): where the FE model's prediction was placed on a
-- hull, its e_above_hull, coverage and decomposition (first reference by name), else NULL. By
-- default the rarest ion's ICSD share is >= 0.01 (`matstore screen NAME --rare-ions` relaxes it).
-- depends: candidate_hull, candidates
-- key: composition_id
WITH h AS (
    SELECT * FROM candidate_hull
    QUALIFY row_number() OVER (PARTITION BY composition_id, fe_model ORDER BY reference) = 1
)
SELECT c.composition_id, c.formula, c.n_elements, c.novel, c.valid, c.ions, c.rarest_ion,
       c.rarest_ion_share, h.e_above_hull, h.e_above_hull_bar,
       c.pred_formation_energy_per_atom, c.pred_formation_energy_std,
       h.fe_model_bias, h.fe_model_mae, h.fe_model_bias_phases, h.fe_model_bias_family,
       h.anion_family, c.pred_band_gap, c.pred_band_gap_std, c.pred_band_gap_p_metal,
       c.pred_formation_energy_model AS fe_model, c.pred_band_gap_model AS band_gap_model,
       h.reference, h.reference_ingests, h.coverage, h.ternary_coverage, h.missing_systems,
       h.products_dft, h.products_predicted, h.decomposition, h.decomposes_to_elements,
       c.times_generated, c.first_run, c.generated_by
FROM candidates c
LEFT JOIN h ON h.composition_id = c.composition_id AND h.fe_model = c.pred_formation_energy_model
WHERE c.novel AND c.valid
  AND c.pred_formation_energy_per_atom < 0
  AND c.rarest_ion_share >= 0.01  -- relax: ions
ORDER BY c.pred_formation_energy_per_atom, c.formula
