-- Every generated candidate with the columns the composition screens share (the hull screens'
-- schema, candidate_hull): the latest predictions with their model versions and spreads, ions
-- and the rarest ion's ICSD share, and, where the FE model's prediction was placed on a hull, the
-- first preferred hull's (candidate_hull.preferred_hull, then by reference name) e_above_hull, coverage, decomposition and the model's measured bias.
-- depends: candidate_hull, candidates
-- key: composition_id
WITH h AS (
    SELECT * FROM candidate_hull
    QUALIFY row_number() OVER (PARTITION BY composition_id, fe_model ORDER BY NOT preferred_hull, reference) = 1
)
SELECT c.composition_id, c.formula, c.n_elements, c.novel, c.valid, c.ions, c.rarest_ion,
       c.rarest_ion_share, h.e_above_hull, h.e_above_hull_bar,
       c.pred_formation_energy_per_atom, c.pred_formation_energy_std,
       h.fe_model_bias, h.fe_model_mae, h.fe_model_bias_phases, h.fe_model_bias_family,
       h.anion_family, c.pred_band_gap, c.pred_band_gap_std, c.pred_band_gap_p_metal,
       c.pred_formation_energy_model AS fe_model, c.pred_band_gap_model AS band_gap_model,
       h.reference, h.preferred_hull, h.reference_ingests, h.coverage, h.ternary_coverage, h.missing_systems,
       h.products_dft, h.products_predicted, h.decomposition, h.decomposes_to_elements,
       c.times_generated, c.first_run, c.generated_by
FROM candidates c
LEFT JOIN h ON h.composition_id = c.composition_id AND h.fe_model = c.pred_formation_energy_model
