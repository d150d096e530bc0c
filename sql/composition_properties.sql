-- What are the known properties of each composition, one column per property?
-- Formation energy is the ground state (lowest over entries); the other properties come from
-- the entry with the lowest formation energy that has them (then the lowest value).
WITH p AS (
    SELECT p.composition_id, p.material_id, m.source, p.name, p.value
    FROM properties p JOIN materials m USING (material_id)
    WHERE p.value IS NOT NULL
),
fe AS (
    SELECT material_id, min(value) AS fe FROM p
    WHERE name = 'formation_energy_per_atom' GROUP BY material_id
),
ranked AS (
    SELECT p.*, [coalesce(fe.fe, 1e300), p.value] AS rank_key
    FROM p LEFT JOIN fe USING (material_id)
)
SELECT c.composition_id,
       c.formula,
       arg_min(value, rank_key) FILTER (WHERE name = 'formation_energy_per_atom') AS formation_energy_per_atom,
       arg_min(source, rank_key) FILTER (WHERE name = 'formation_energy_per_atom') AS formation_energy_source,
       arg_min(value, rank_key) FILTER (WHERE name = 'band_gap') AS band_gap,
       arg_min(source, rank_key) FILTER (WHERE name = 'band_gap') AS band_gap_source,
       arg_min(value, rank_key) FILTER (WHERE name = 'energy_above_hull') AS energy_above_hull,
       count(DISTINCT material_id) AS n_entries,
       list(DISTINCT source ORDER BY source) AS sources
FROM ranked
JOIN compositions c USING (composition_id)
GROUP BY c.composition_id, c.formula
