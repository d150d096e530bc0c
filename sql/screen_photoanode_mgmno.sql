-- Which Mg-Mn-O crystal structures pass seed 003's photoanode screen as far as the store can say:
-- predicted band gap 1.6 <= Eg <= 3.0 eV and energy above the hull <= 80 meV/atom? One row per
-- structure and stability row (formation-energy model, reference), closest to the hull first.
-- Conventions, unmixed and named per row: the band gap is the latest composition-level prediction
-- (band_gap_model; trained on DFT-PBE/OQMD or MP gaps, not the paper's HSE gaps, which run
-- ~1 eV higher: the window is the paper's, applied to another functional); e_above_hull is the
-- composition's stability row (fe_model's predicted formation energy on the hull of reference's
-- phases), not a structure energy. Pourbaix stability (the paper's dG_pbx <= 0.59 eV/atom) is
-- not screened: pymatgen computes Pourbaix diagrams from Materials Project ion reference data,
-- which it does not ship (MPRester, online only). As every screen: a two-stage band gap is 0 where
-- p_metal >= 0.5, and the oxidation-state assignment's rarest ion has an ICSD share >= 0.01.
-- depends: ion_plausibility, latest_band_gap, model_refs
-- key: structure_id, fe_model, reference
SELECT s.structure_id,
       c.formula,
       s.composition_id,
       s.origin,
       s.method,
       s.run_id,
       s.n_sites,
       s.volume / s.n_sites AS volume_per_atom,
       s.spacegroup_symbol,
       bg.pred_band_gap,
       bg.pred_band_gap_std,
       bg.pred_band_gap_p_metal,
       gm.ref AS band_gap_model,
       ip.rarest_ion,
       ip.rarest_ion_share,
       st.e_above_hull,
       fe.ref AS fe_model,
       st.reference
FROM structures s
JOIN compositions c USING (composition_id)
JOIN latest_band_gap bg USING (composition_id)
JOIN stability st ON st.composition_id = s.composition_id
JOIN model_refs fe ON fe.model_id = st.model_id
LEFT JOIN model_refs gm ON gm.model_id = bg.model_id
JOIN ion_plausibility ip USING (composition_id)
WHERE list_sort(c.elements) = ['Mg', 'Mn', 'O']
  AND st.model_id > 0
  AND bg.pred_band_gap BETWEEN 1.6 AND 3.0
  AND ip.rarest_ion_share >= 0.01
  AND st.e_above_hull <= 0.08
ORDER BY st.e_above_hull, c.formula, s.structure_id, fe_model, st.reference
