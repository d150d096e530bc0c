-- The demo's screen (the builtin data has no band gaps): which novel, chemically valid
-- candidates are predicted on or near (<= 0.1 eV/atom above) the convex hull of a source's
-- known phases, most stable first? One row per (candidate, FE model version, reference source),
-- each named (fe_model, reference); pred_formation_energy_std: that version's ensemble spread.
-- depends: candidates, model_refs
-- key: composition_id, fe_model, reference
SELECT c.composition_id, c.formula, c.n_elements,
       s.formation_energy_per_atom AS pred_formation_energy_per_atom,
       fp.std AS pred_formation_energy_std,
       s.e_above_hull AS pred_e_above_hull,
       array_to_string([printf('%.2f %s', d.fraction, d.formula) FOR d IN s.decomposition],
                       ' + ') AS decomposes_to,
       mv.ref AS fe_model,
       s.reference,
       c.times_generated, c.first_run, c.generated_by
FROM candidates c
JOIN stability s USING (composition_id)
JOIN model_refs mv ON mv.model_id = s.model_id
LEFT JOIN predictions fp ON fp.composition_id = s.composition_id AND fp.model_id = s.model_id
                        AND fp.property = 'formation_energy_per_atom'
WHERE c.novel AND c.valid
  AND s.e_above_hull <= 0.1
ORDER BY s.e_above_hull, c.formula, fe_model, s.reference
