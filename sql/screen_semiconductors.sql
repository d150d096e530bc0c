-- Thesis ch. 5: which novel, chemically valid candidates are predicted stable (formation
-- energy < 0 eV/atom) semiconductors (1.0 <= band gap <= 2.0 eV), most stable first?
-- depends: candidates
-- key: composition_id
SELECT composition_id, formula, n_elements,
       pred_formation_energy_per_atom, pred_band_gap,
       times_generated, first_run, generated_by
FROM candidates
WHERE novel AND valid
  AND pred_formation_energy_per_atom < 0
  AND pred_band_gap BETWEEN 1.0 AND 2.0
ORDER BY pred_formation_energy_per_atom, formula
