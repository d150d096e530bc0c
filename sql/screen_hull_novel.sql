-- The demo's screen (the builtin data has no band gaps): which novel, chemically valid
-- candidates are predicted on or near (<= 0.1 eV/atom above) the convex hull of a source's
-- known phases, most stable first? One row per (candidate, FE model version, reference source),
-- with candidate_hull's columns: coverage (by default every binary sub-system holds a reference
-- phase), the model's measured bias and spread (e_above_hull_bar), the ions and the rarest one's
-- ICSD share (by default >= 0.01). Where a source's mixed hull was computed (`stability --hull
-- mixed`), by default only its rows, not the same source's DFT-only or model-only rows
-- (preferred_hull). `matstore screen NAME --partial-coverage / --rare-ions / --all-hulls`
-- relaxes them.
-- depends: candidate_hull
-- key: composition_id, fe_model, reference
SELECT *
FROM candidate_hull
WHERE novel AND valid
  AND e_above_hull <= 0.1
  AND coverage >= 1.0  -- relax: coverage
  AND rarest_ion_share >= 0.01  -- relax: ions
  AND preferred_hull  -- relax: hulls
ORDER BY e_above_hull, formula, fe_model, reference
