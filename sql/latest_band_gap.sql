-- What is each composition's latest band-gap prediction, as the structure screens show it? The
-- row of the latest run (then the highest model id), its value, std, p_metal and model taken from
-- that one row together; pred_band_gap is 0 where a two-stage model says p_metal >= 0.5.
-- key: composition_id
WITH latest AS (
    SELECT composition_id,
           arg_max({'value': value, 'std': std, 'p_metal': p_metal, 'model_id': model_id},
                   [coalesce(run_id, 0), model_id]) AS b
    FROM predictions
    WHERE property = 'band_gap'
    GROUP BY composition_id
)
SELECT composition_id,
       CASE WHEN b.p_metal >= 0.5 THEN 0.0 ELSE b.value END AS pred_band_gap,
       b.std AS pred_band_gap_std,
       b.p_metal AS pred_band_gap_p_metal,
       b.model_id
FROM latest
