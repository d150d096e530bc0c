-- How is each model version named? ref = name@version, the one spelling every view, report and
-- command uses for a model version (`matstore predict --model NAME@VERSION`).
-- key: model_id
SELECT model_id, name, version, name || '@' || version AS ref
FROM model_versions
