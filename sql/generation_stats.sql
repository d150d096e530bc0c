-- How did each generation run do: samples drawn, decodable %, unique %, novel %, valid %?
-- unique % = distinct compositions / decodable samples (MatGAN's uniqueness); novel % and
-- valid % are over the run's distinct compositions (valid % over those already checked).
-- depends: known, model_refs
-- key: run_id
WITH b AS (
    SELECT run_id, count(*) AS n_batches, sum(n_samples) AS n_samples,
           sum(n_decodable) AS n_decodable, sum(seconds) AS seconds
    FROM run_batches GROUP BY run_id
),
u AS (
    SELECT DISTINCT run_id, composition_id FROM generated
),
d AS (
    SELECT u.run_id,
           count(*) AS n_unique,
           count(*) FILTER (WHERE k.composition_id IS NULL) AS n_novel,
           count(va.composition_id) AS n_checked,
           count(*) FILTER (WHERE va.charge_neutral AND va.electronegativity_balanced) AS n_valid
    FROM u
    LEFT JOIN known k USING (composition_id)
    LEFT JOIN (SELECT composition_id,
                      bool_or(charge_neutral) AS charge_neutral,
                      bool_or(electronegativity_balanced) AS electronegativity_balanced
               FROM validity
               WHERE checker_version IN (SELECT checker_version FROM validity_checkers WHERE is_default)
               GROUP BY composition_id) va USING (composition_id)
    GROUP BY u.run_id
)
SELECT r.run_id,
       mv.ref AS model,
       r.seed,
       r.device,
       r.status,
       r.n_requested,
       coalesce(b.n_batches, 0) AS n_batches,
       coalesce(b.n_samples, 0) AS n_samples,
       coalesce(b.n_decodable, 0) AS n_decodable,
       round(100.0 * b.n_decodable / nullif(b.n_samples, 0), 2) AS decodable_pct,
       coalesce(d.n_unique, 0) AS n_unique,
       round(100.0 * d.n_unique / nullif(b.n_decodable, 0), 2) AS unique_pct,
       coalesce(d.n_novel, 0) AS n_novel,
       round(100.0 * d.n_novel / nullif(d.n_unique, 0), 2) AS novel_pct,
       coalesce(d.n_checked, 0) AS n_checked,
       round(100.0 * d.n_valid / nullif(d.n_checked, 0), 2) AS valid_pct,
       r.rows_per_s
FROM runs r
LEFT JOIN model_refs mv ON mv.model_id = r.model_id
LEFT JOIN b USING (run_id)
LEFT JOIN d USING (run_id)
WHERE r.kind = 'generate'
