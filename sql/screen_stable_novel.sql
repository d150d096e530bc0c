-- The demo's screen (the builtin data has no band gaps): which novel, chemically valid
-- candidates are predicted to have negative formation energy, most stable first? The latest
-- prediction with its model version (fe_model) and ensemble spread (NULL for one model). Same
-- columns as the hull screens (candidate_hull): where the FE model's prediction was placed on a
-- hull, its e_above_hull, coverage and decomposition (first reference by name), else NULL. By
-- default the rarest ion's ICSD share is >= 0.01 (`matstore screen NAME --rare-ions` relaxes it).
-- depends: candidate_screen_rows
-- key: composition_id
SELECT *
FROM candidate_screen_rows c
WHERE c.novel AND c.valid
  AND c.pred_formation_energy_per_atom < 0
  AND c.rarest_ion_share >= 0.01  -- relax: ions
ORDER BY c.pred_formation_energy_per_atom, c.formula
