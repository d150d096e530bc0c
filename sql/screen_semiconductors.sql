-- Thesis ch. 5: which novel, chemically valid candidates are predicted stable (formation
-- energy < 0 eV/atom) semiconductors (1.0 <= band gap <= 2.0 eV), most stable first? The latest
-- predictions with their model versions (fe_model, band_gap_model) and ensemble spreads (*_std);
-- band gap 0 where a two-stage model's p_metal >= 0.5. Same columns as the hull screens
-- (candidate_hull): where the FE model's prediction was placed on a hull, its e_above_hull,
-- coverage and decomposition (first reference by name), else NULL. By default the rarest ion's
-- ICSD share is >= 0.01 (`matstore screen NAME --rare-ions` relaxes it).
-- depends: candidate_screen_rows
-- key: composition_id
SELECT *
FROM candidate_screen_rows c
WHERE c.novel AND c.valid
  AND c.pred_formation_energy_per_atom < 0
  AND c.pred_band_gap BETWEEN 1.0 AND 2.0
  AND c.rarest_ion_share >= 0.01  -- relax: ions
ORDER BY c.pred_formation_energy_per_atom, c.formula
