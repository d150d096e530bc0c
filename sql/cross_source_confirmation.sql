-- MatGAN Table 3.4: of the compositions a run generated that are new to its model's training
-- data, how many does each source in the store contain (confirm)? Training data = the model's
-- `composition_sets` rows with role 'train' (when none are recorded, nothing is excluded).
-- depends: model_refs
-- key: run_id, source
WITH gen AS (
    SELECT DISTINCT g.run_id, r.model_id, g.composition_id
    FROM generated g JOIN runs r USING (run_id)
),
train AS (
    SELECT DISTINCT model_id, composition_id FROM composition_sets WHERE role = 'train'
),
new_gen AS (
    SELECT gen.* FROM gen
    WHERE NOT EXISTS (SELECT 1 FROM train t
                      WHERE t.model_id = gen.model_id AND t.composition_id = gen.composition_id)
),
in_source AS (SELECT DISTINCT source, composition_id FROM materials)
SELECT n.run_id,
       mv.ref AS model,
       s.source,
       count(*) AS n_confirmed,
       (SELECT count(*) FROM new_gen x WHERE x.run_id = n.run_id) AS n_new_generated
FROM new_gen n
JOIN in_source s USING (composition_id)
LEFT JOIN model_refs mv ON mv.model_id = n.model_id
GROUP BY n.run_id, mv.ref, s.source
ORDER BY n.run_id, s.source
