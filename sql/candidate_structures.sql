-- Which structures have been predicted or generated for the generators' candidate compositions,
-- and what do the candidates' screens say? One row per (candidate, structure), with the method
-- (template-substitution or the flagged pyxtal-random fallback), its template and its rank.
-- depends: candidates
-- key: structure_id
SELECT s.structure_id,
       k.composition_id,
       k.formula,
       k.novel,
       k.valid,
       k.pred_formation_energy_per_atom,
       k.pred_band_gap,
       k.pred_energy_above_hull,
       s.origin,
       s.method,
       s.spacegroup_symbol,
       s.prototype,
       s.parent_structure_id AS template_structure_id,
       json_extract_string(s.details, '$.template_formula') AS template_formula,
       TRY_CAST(json_extract(s.details, '$.rank') AS INTEGER) AS rank,
       s.run_id
FROM candidates k
JOIN structures s USING (composition_id)
WHERE s.origin <> 'known'
