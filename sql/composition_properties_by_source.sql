-- What does each source say about each composition? One row per (composition, source) with the
-- source's kind (dft / experiment / unknown, from `sources`) and level of theory.
-- Within one source: formation energy is the ground state (lowest over the source's entries);
-- other properties come from the source's entry with the lowest formation energy that has them
-- (then the lowest value). Values of different sources are never compared or combined here.
-- key: composition_id, source
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
SELECT r.composition_id,
       c.formula,
       r.source,
       coalesce(s.kind, 'unknown') AS kind,
       s.method,
       arg_min(r.value, r.rank_key) FILTER (WHERE r.name = 'formation_energy_per_atom') AS formation_energy_per_atom,
       arg_min(r.value, r.rank_key) FILTER (WHERE r.name = 'band_gap') AS band_gap,
       arg_min(r.value, r.rank_key) FILTER (WHERE r.name = 'energy_above_hull') AS energy_above_hull,
       count(DISTINCT r.material_id) AS n_entries
FROM ranked r
JOIN compositions c USING (composition_id)
LEFT JOIN sources s ON s.name = r.source
GROUP BY r.composition_id, c.formula, r.source, s.kind, s.method
