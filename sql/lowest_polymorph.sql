-- Which relaxed structure of each composition is the lowest in energy under each potential?
-- One row per (composition, potential) over converged relaxations only: the polymorph's
-- relaxed structure and input, its energy per atom in the potential's convention, how many
-- converged polymorphs were compared, and the potential's name@version.
-- key: composition_id, model_id
SELECT r.composition_id,
       c.formula,
       r.model_id,
       m.name || '@' || m.version AS potential,
       arg_min(r.relaxed_structure_id, (r.energy_per_atom, r.relaxed_structure_id)) AS structure_id,
       arg_min(r.structure_id, (r.energy_per_atom, r.relaxed_structure_id)) AS input_structure_id,
       min(r.energy_per_atom) AS energy_per_atom,
       count(DISTINCT r.relaxed_structure_id) AS n_polymorphs
FROM relaxations r
JOIN compositions c USING (composition_id)
JOIN model_versions m ON m.model_id = r.model_id
WHERE r.status = 'converged' AND r.relaxed_structure_id IS NOT NULL
GROUP BY r.composition_id, c.formula, r.model_id, m.name, m.version
