-- Which novel, chemically valid candidates (the default oxidation-state set) are predicted to lie
-- within 0.1 eV/atom of the convex hull of known phases and to have 1.0 <= band gap <= 2.0 eV,
-- closest to the hull first? One row per formation-energy model version and reference source
-- placed on the hull (stability), each named: fe_model (whose predicted formation energy was
-- placed on the hull of `reference`'s phases) and band_gap_model (the latest band-gap
-- prediction, candidates' rule: highest run id, then model id). ions: the stored oxidation states.
-- *_std: the version's ensemble spread (NULL for one model); p_metal: two-stage band gaps.
-- decomposes_to_elements: the hull under it is made of elements only (the reference knows no
-- compound there), so e_above_hull is just the predicted formation energy: far below 0 it is an
-- extrapolation or a gap in the reference, not evidence of stability.
-- depends: candidates, model_refs
-- key: composition_id, fe_model, reference
WITH bg AS (  -- one whole row per composition (a struct): value, std, p_metal, model together
    SELECT composition_id,
           arg_max({'value': value, 'std': std, 'p_metal': p_metal, 'model_id': model_id},
                   [coalesce(run_id, 0), model_id]) AS b
    FROM predictions
    WHERE property = 'band_gap'
    GROUP BY composition_id
)
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       c.ions,
       s.e_above_hull,
       s.formation_energy_per_atom AS pred_formation_energy_per_atom,
       fp.std AS pred_formation_energy_std,
       bg.b.value AS pred_band_gap,
       bg.b.std AS pred_band_gap_std,
       bg.b.p_metal AS pred_band_gap_p_metal,
       fe.ref AS fe_model,
       gm.ref AS band_gap_model,
       s.reference,
       s.reference_ingests,
       s.decomposition,
       list_bool_and(list_transform(s.decomposition,
                                    lambda d: regexp_full_match(d.formula, '[A-Z][a-z]?[0-9]*'))) AS decomposes_to_elements,
       c.times_generated,
       c.first_run,
       c.generated_by
FROM candidates c
JOIN stability s USING (composition_id)
JOIN bg USING (composition_id)
JOIN model_refs fe ON fe.model_id = s.model_id
LEFT JOIN model_refs gm ON gm.model_id = bg.b.model_id
LEFT JOIN predictions fp ON fp.composition_id = s.composition_id AND fp.model_id = s.model_id
                        AND fp.property = 'formation_energy_per_atom'
WHERE c.novel AND c.valid
  AND s.model_id > 0
  AND s.e_above_hull <= 0.1
  AND bg.b.value BETWEEN 1.0 AND 2.0
ORDER BY s.e_above_hull, c.formula, fe_model, s.reference
