-- Thesis ch. 5: which novel, chemically valid candidates are predicted stable (formation
-- energy < 0 eV/atom) semiconductors (1.0 <= band gap <= 2.0 eV), most stable first? Each
-- predicted column comes with the model version behind it (*_model) and its ensemble spread
-- (*_std, NULL for one model); p_metal: a two-stage band-gap model's metal probability.
-- depends: candidates
-- key: composition_id
SELECT composition_id, formula, n_elements,
       pred_formation_energy_per_atom, pred_formation_energy_std, pred_formation_energy_model,
       pred_band_gap, pred_band_gap_std, pred_band_gap_p_metal, pred_band_gap_model,
       times_generated, first_run, generated_by
FROM candidates
WHERE novel AND valid
  AND pred_formation_energy_per_atom < 0
  AND pred_band_gap BETWEEN 1.0 AND 2.0
ORDER BY pred_formation_energy_per_atom, formula
