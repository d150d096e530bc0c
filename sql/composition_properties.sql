-- What are the known properties of each composition, one column per property, each column from
-- ONE source (named beside it), never the lowest value across sources.
-- Per-source values: composition_properties_by_source (ground state within the source).
--
-- Source preference (per property column; the first source in this order that has any value of
-- that property in the store fills the whole column):
--   formation_energy_per_atom, band_gap, energy_above_hull (the DFT columns):
--     1. oqmd, 2. mp, 3. other sources of kind 'dft' by name,
--     4. sources of kind 'unknown' (files ingested without --kind) by name;
--     sources of kind 'experiment' never fill these columns, nor do sources of kind 'model'
--     (active-learning labels of a model oracle, matstore.al: predictions, not data).
--   formation_energy_experiment, band_gap_experiment: sources of kind 'experiment' by name.
-- *_kind says which kind filled the column ('dft' or, only where no DFT source has the property,
-- 'unknown'). Training chooses its source explicitly (matstore.training: target_source).
-- depends: composition_properties_by_source
-- key: composition_id
WITH bs AS MATERIALIZED (
    SELECT * FROM composition_properties_by_source
),
ranked AS (
    SELECT source, kind,
           row_number() OVER (ORDER BY CASE kind WHEN 'dft' THEN 0 WHEN 'unknown' THEN 1 ELSE 2 END,
                                       CASE source WHEN 'oqmd' THEN 0 WHEN 'mp' THEN 1 ELSE 2 END,
                                       source) AS rank
    FROM (SELECT DISTINCT source, kind FROM bs)
),
pick AS (  -- the one source of each column
    SELECT arg_min(source, rank) FILTER (WHERE kind NOT IN ('experiment', 'model') AND formation_energy_per_atom IS NOT NULL) AS fe,
           arg_min(source, rank) FILTER (WHERE kind NOT IN ('experiment', 'model') AND band_gap IS NOT NULL) AS bg,
           arg_min(source, rank) FILTER (WHERE kind NOT IN ('experiment', 'model') AND energy_above_hull IS NOT NULL) AS eh,
           arg_min(source, rank) FILTER (WHERE kind = 'experiment' AND formation_energy_per_atom IS NOT NULL) AS xfe,
           arg_min(source, rank) FILTER (WHERE kind = 'experiment' AND band_gap IS NOT NULL) AS xbg
    FROM bs JOIN ranked USING (source, kind)
),
per AS (
    SELECT composition_id, sum(n_entries) AS n_entries, list(source ORDER BY source) AS sources
    FROM bs GROUP BY composition_id
)
SELECT per.composition_id,
       c.formula,
       fe.formation_energy_per_atom,
       fe.source AS formation_energy_source,
       fe.kind AS formation_energy_kind,
       bg.band_gap,
       bg.source AS band_gap_source,
       bg.kind AS band_gap_kind,
       eh.energy_above_hull,
       eh.source AS energy_above_hull_source,
       xfe.formation_energy_per_atom AS formation_energy_experiment,
       xfe.source AS formation_energy_experiment_source,
       xbg.band_gap AS band_gap_experiment,
       xbg.source AS band_gap_experiment_source,
       per.n_entries,
       per.sources
FROM per
CROSS JOIN pick
JOIN compositions c ON c.composition_id = per.composition_id
LEFT JOIN bs fe ON fe.composition_id = per.composition_id AND fe.source = pick.fe
    AND fe.formation_energy_per_atom IS NOT NULL
LEFT JOIN bs bg ON bg.composition_id = per.composition_id AND bg.source = pick.bg
    AND bg.band_gap IS NOT NULL
LEFT JOIN bs eh ON eh.composition_id = per.composition_id AND eh.source = pick.eh
    AND eh.energy_above_hull IS NOT NULL
LEFT JOIN bs xfe ON xfe.composition_id = per.composition_id AND xfe.source = pick.xfe
    AND xfe.formation_energy_per_atom IS NOT NULL
LEFT JOIN bs xbg ON xbg.composition_id = per.composition_id AND xbg.source = pick.xbg
    AND xbg.band_gap IS NOT NULL
