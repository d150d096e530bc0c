-- How does the fraction of unique compositions fall as a run draws more samples (by batch)?
-- key: run_id, batch_no
WITH first_seen AS (
    SELECT run_id, composition_id, min(batch_no) AS batch_no
    FROM generated GROUP BY run_id, composition_id
),
new_per_batch AS (
    SELECT run_id, batch_no, count(*) AS n_new FROM first_seen GROUP BY run_id, batch_no
)
SELECT b.run_id,
       b.batch_no,
       sum(b.n_samples) OVER w AS samples_drawn,
       sum(b.n_decodable) OVER w AS decodable_drawn,
       sum(coalesce(n.n_new, 0)) OVER w AS unique_compositions,
       sum(coalesce(n.n_new, 0)) OVER w / nullif(sum(b.n_decodable) OVER w, 0) AS unique_fraction
FROM run_batches b
LEFT JOIN new_per_batch n USING (run_id, batch_no)
WINDOW w AS (PARTITION BY b.run_id ORDER BY b.batch_no ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY b.run_id, b.batch_no
