-- What is each trained model version: which network, which inputs (featurizer, shape, labels),
-- which target in which unit from which source, trained on what selection and split, how accurate?
-- One row per model version (model_versions.card; versions saved before cards: from config and
-- hyperparams). Metrics are on the test split, mae/rmse in the target's unit.
-- depends: model_refs
-- key: model_id
SELECT model_id,
       r.ref AS model,
       kind,
       coalesce(json_extract_string(card, '$.architecture'),
                CASE kind WHEN 'wgan' THEN 'WGAN' WHEN 'autoencoder' THEN 'Autoencoder'
                          WHEN 'cnn' THEN 'CNNRegressor' WHEN 'elemnet' THEN 'ElemNet'
                          WHEN 'rf' THEN 'ForestRegressor' END) AS architecture,
       coalesce(json_extract_string(card, '$.inputs.featurizer'),
                CASE WHEN kind = 'wgan' THEN 'latent' END,
                json_extract_string(hyperparams, '$.featurizer')) AS input_featurizer,
       json_extract_string(card, '$.inputs.featurizer_version') AS featurizer_version,
       from_json(json_extract(card, '$.inputs.shape'), '["BIGINT"]') AS input_shape,
       from_json(json_extract(card, '$.inputs.labels'), '["VARCHAR"]') AS input_labels,
       json_extract_string(card, '$.outputs.featurizer') AS output_featurizer,
       from_json(json_extract(card, '$.outputs.shape'), '["BIGINT"]') AS output_shape,
       json_extract_string(hyperparams, '$.property') AS target_property,
       coalesce(json_extract_string(card, '$.target.unit'),
                CASE json_extract_string(hyperparams, '$.property')
                    WHEN 'formation_energy_per_atom' THEN 'eV/atom' WHEN 'band_gap' THEN 'eV'
                    WHEN 'energy_above_hull' THEN 'eV/atom' END) AS target_unit,
       json_extract_string(hyperparams, '$.target_source') AS target_source,
       json_extract_string(hyperparams, '$.target_kind') AS target_source_kind,
       json_extract_string(hyperparams, '$.target_method') AS target_method,
       training_query AS training_selection,
       training_rows,
       json_extract(split, '$.n_train')::BIGINT AS n_train,
       json_extract(split, '$.n_val')::BIGINT AS n_val,
       json_extract(split, '$.n_test')::BIGINT AS n_test,
       seed,
       json_extract(metrics, '$.test.mae')::DOUBLE AS test_mae,
       json_extract(metrics, '$.test.rmse')::DOUBLE AS test_rmse,
       json_extract(metrics, '$.test.r2')::DOUBLE AS test_r2,
       json_extract(metrics, '$.sample.uniqueness_pct')::DOUBLE AS sample_uniqueness_pct,
       json_extract(metrics, '$.sample.novelty_pct')::DOUBLE AS sample_novelty_pct,
       json_extract(metrics, '$.sample.validity_pct')::DOUBLE AS sample_validity_pct,
       metrics,
       config,
       hyperparams,
       data_hash,
       weights_sha256,
       device,
       created_at
FROM model_versions JOIN model_refs r USING (model_id)
ORDER BY r.name, r.version
