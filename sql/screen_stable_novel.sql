-- The demo's screen (the builtin data has no band gaps): which novel, chemically valid
-- candidates are predicted to have negative formation energy, most stable first? With the model
-- version behind the prediction and its ensemble spread (NULL for one model).
-- depends: candidates
-- key: composition_id
SELECT composition_id, formula, n_elements,
       pred_formation_energy_per_atom, pred_formation_energy_std, pred_formation_energy_model,
       times_generated, first_run, generated_by
FROM candidates
WHERE novel AND valid
  AND pred_formation_energy_per_atom < 0
ORDER BY pred_formation_energy_per_atom, formula
