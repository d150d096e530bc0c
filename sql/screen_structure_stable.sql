-- Which compositions are stable by a relaxed crystal structure, not by a composition model: the
-- lowest relaxed polymorph under an ML potential within 80 meV/atom of the hull of known
-- structures relaxed with the SAME potential (stability rows with a structure_id, reference
-- relaxed-known, written by `matstore relax-stability`)? One row per composition and potential,
-- closest to the hull first; the potential, its energy convention and the polymorph's origin
-- (known, template, generated) and input are named per row. The latest band-gap prediction of
-- the composition is shown where there is one (not required: AND pred_band_gap BETWEEN .. to
-- require a window). Composition-model stability rows never enter (structure_id IS NULL there).
-- depends: latest_band_gap, model_refs
-- key: composition_id, potential
SELECT st.composition_id,
       c.formula,
       st.e_above_hull,
       st.formation_energy_per_atom,
       pm.ref AS potential,
       st.convention,
       st.reference,
       st.structure_id,
       i.structure_id AS input_structure_id,
       i.origin AS input_origin,
       i.method AS input_method,
       s.spacegroup_symbol,
       len(st.reference_structures) AS n_reference_structures,
       bg.pred_band_gap,
       bg.pred_band_gap_std,
       bg.pred_band_gap_p_metal,
       gm.ref AS band_gap_model
FROM stability st
JOIN compositions c USING (composition_id)
JOIN model_refs pm ON pm.model_id = st.model_id
JOIN structures s ON s.structure_id = st.structure_id
LEFT JOIN structures i ON i.structure_id = s.parent_structure_id
LEFT JOIN latest_band_gap bg ON bg.composition_id = st.composition_id
LEFT JOIN model_refs gm ON gm.model_id = bg.model_id
WHERE st.structure_id IS NOT NULL
  AND st.reference = 'relaxed-known'
  AND st.e_above_hull <= 0.08
ORDER BY st.e_above_hull, c.formula, potential
