-- MatGAN Table 3.3: what % of the training set and of the held-out set did a run regenerate,
-- and how many of its samples are new? Sets come from `composition_sets`: a model's own split
-- (model_id = the run's model; role train / holdout) and plain named lists (model_id NULL).
-- key: run_id, set_name
WITH gen_runs AS (
    SELECT run_id, model_id FROM runs WHERE kind = 'generate'
),
sets AS (
    SELECT r.run_id, s.set_name, s.role, s.composition_id
    FROM gen_runs r
    JOIN (SELECT DISTINCT set_name, role, model_id, composition_id FROM composition_sets) s
      ON s.model_id = r.model_id OR s.model_id IS NULL
),
set_sizes AS (
    SELECT run_id, set_name, any_value(role) AS role, count(*) AS set_size
    FROM sets GROUP BY run_id, set_name
),
gen AS (SELECT DISTINCT run_id, composition_id FROM generated),
recovered AS (
    SELECT s.run_id, s.set_name, count(*) AS n_recovered
    FROM sets s JOIN gen g USING (run_id, composition_id)
    GROUP BY s.run_id, s.set_name
),
samples AS (
    SELECT g.run_id,
           count(*) AS samples_drawn,
           count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1 FROM sets s WHERE s.run_id = g.run_id AND s.composition_id = g.composition_id
           )) AS new_samples
    FROM generated g JOIN gen_runs USING (run_id)
    GROUP BY g.run_id
)
SELECT z.run_id,
       z.set_name,
       z.role,
       z.set_size,
       coalesce(rc.n_recovered, 0) AS n_recovered,
       round(100.0 * coalesce(rc.n_recovered, 0) / z.set_size, 2) AS recovery_pct,
       sm.samples_drawn,
       sm.new_samples
FROM set_sizes z
LEFT JOIN recovered rc USING (run_id, set_name)
LEFT JOIN samples sm USING (run_id)
ORDER BY z.run_id, z.role, z.set_name
