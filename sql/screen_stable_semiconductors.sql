-- Which novel, chemically valid candidates (the default oxidation-state set) are predicted to lie
-- within 0.1 eV/atom of the convex hull of known phases and to have 1.0 <= band gap <= 2.0 eV,
-- closest to the hull first? One row per formation-energy model version and reference placed on
-- the hull, with candidate_hull's columns: the hull's coverage (by default only compositions
-- whose every binary sub-system holds a reference phase: elsewhere the hull is partly the
-- elements' tie plane and far-below-hull numbers are artefacts), the model's measured bias and
-- spread beside e_above_hull (e_above_hull_bar), and the ions with the rarest one's ICSD share
-- (by default >= 0.01); where a source's mixed hull was computed (`stability --hull mixed`), only
-- its rows by default (preferred_hull). `matstore screen NAME --partial-coverage / --rare-ions /
-- --all-hulls` relaxes them.
-- Band gap: the latest band-gap prediction (0 where a two-stage model's p_metal >= 0.5).
-- depends: candidate_hull
-- key: composition_id, fe_model, reference
SELECT *
FROM candidate_hull
WHERE novel AND valid
  AND e_above_hull <= 0.1
  AND pred_band_gap BETWEEN 1.0 AND 2.0
  AND coverage >= 1.0  -- relax: coverage
  AND rarest_ion_share >= 0.01  -- relax: ions
  AND preferred_hull  -- relax: hulls
ORDER BY e_above_hull, formula, fe_model, reference
