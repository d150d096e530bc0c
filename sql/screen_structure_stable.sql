-- Which compositions are stable by a relaxed crystal structure, not by a composition model: the
-- lowest relaxed polymorph under an ML potential within 80 meV/atom of the hull of known
-- structures relaxed with the SAME potential (stability rows with a structure_id, reference
-- relaxed-known, written by `matstore relax-stability`)? One row per composition and potential,
-- closest to the hull first; the potential, its energy convention and the polymorph's origin
-- (known, template, generated) and input are named per row. The latest band-gap prediction of
-- the composition is shown where there is one (not required: AND pred_band_gap BETWEEN .. to
-- require a window). Composition-model stability rows never enter (structure_id IS NULL there).
-- depends: model_refs
-- key: composition_id, potential
WITH bg AS (
    SELECT composition_id,
           arg_max({'value': value, 'std': std, 'p_metal': p_metal, 'model_id': model_id},
                   [coalesce(run_id, 0), model_id]) AS b
    FROM predictions
    WHERE property = 'band_gap'
    GROUP BY composition_id
)
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
       CASE WHEN bg.b.p_metal >= 0.5 THEN 0.0 ELSE bg.b.value END AS pred_band_gap,
       bg.b.std AS pred_band_gap_std,
       bg.b.p_metal AS pred_band_gap_p_metal,
       gm.ref AS band_gap_model
FROM stability st
JOIN compositions c USING (composition_id)
JOIN model_refs pm ON pm.model_id = st.model_id
JOIN structures s ON s.structure_id = st.structure_id
LEFT JOIN structures i ON i.structure_id = s.parent_structure_id
LEFT JOIN bg ON bg.composition_id = st.composition_id
LEFT JOIN model_refs gm ON gm.model_id = bg.b.model_id
WHERE st.structure_id IS NOT NULL
  AND st.reference = 'relaxed-known'
  AND st.e_above_hull <= 0.08
ORDER BY st.e_above_hull, c.formula, potential
