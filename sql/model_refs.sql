-- How is each model version named? ref = name@version, the one spelling every view, report and
-- command uses for a model version (`matstore predict --model NAME@VERSION`); identity =
-- name@version#sha256 prefix of the weights: the same version in every store it is exported or
-- merged into, whatever its number there (`matstore predict --model NAME#SHA`).
-- key: model_id
SELECT model_id, name, version, name || '@' || version AS ref,
       name || '@' || version || '#' || left(weights_sha256, 12) AS identity
FROM model_versions
