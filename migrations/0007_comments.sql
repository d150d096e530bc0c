-- A file that explains itself: COMMENT ON every table and column (units where a value has one),
-- readable with plain DuckDB (duckdb_tables(), duckdb_columns(); docs/file-format.md is generated
-- from them). Views get the question they answer (their sql/*.sql header) when they are created.
-- Also: model_versions.card, the model card (what the network is, which inputs, which target).

ALTER TABLE model_versions ADD COLUMN card JSON;

COMMENT ON TABLE schema_migrations IS 'Schema migrations applied to this file (migrations/NNNN_name.sql), one row each';
COMMENT ON COLUMN schema_migrations.version IS 'Migration number (the schema version is the highest)';
COMMENT ON COLUMN schema_migrations.name IS 'Migration name (file name without number and .sql)';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied (local time)';

COMMENT ON TABLE ingests IS 'One row per ingest of a source (file or API): its options, status and row counts';
COMMENT ON COLUMN ingests.ingest_id IS 'Ingest id (small integer, remapped on merge)';
COMMENT ON COLUMN ingests.source IS 'Source name (sources.name): oqmd, mp, icsd, csv, builtin or a --source-name';
COMMENT ON COLUMN ingests.uri IS 'File path or API URL read';
COMMENT ON COLUMN ingests.params IS 'Options and curation settings of the ingest (JSON)';
COMMENT ON COLUMN ingests.status IS 'running, done, failed or interrupted';
COMMENT ON COLUMN ingests.cursor IS 'Resume point: next page URL or chunk number';
COMMENT ON COLUMN ingests.started_at IS 'Start time (local time)';
COMMENT ON COLUMN ingests.finished_at IS 'End time (local time); NULL while running';
COMMENT ON COLUMN ingests.rows_seen IS 'Rows read from the source (count)';
COMMENT ON COLUMN ingests.rows_kept IS 'New materials written (count)';
COMMENT ON COLUMN ingests.rows_rejected IS 'Unparseable rows, kept in rejects (count)';
COMMENT ON COLUMN ingests.rows_curated IS 'Rows removed by curation rules, kept in curated (count)';
COMMENT ON COLUMN ingests.rows_duplicate IS 'Rows already in the store (count)';
COMMENT ON COLUMN ingests.curation IS 'Rows removed per curation rule (JSON: rule -> count)';
COMMENT ON COLUMN ingests.pid IS 'Writer process id, to detect a killed ingest';
COMMENT ON COLUMN ingests.host IS 'Host name of the writer process';
COMMENT ON COLUMN ingests.pid_started IS 'Start time of the writer process (epoch seconds, from /proc; NULL where unknown)';

COMMENT ON TABLE rejects IS 'Rows an ingest could not parse, with the reason';
COMMENT ON COLUMN rejects.ingest_id IS 'Ingest that read the row (ingests.ingest_id)';
COMMENT ON COLUMN rejects.row_ref IS 'Line number, page/offset or external id of the row';
COMMENT ON COLUMN rejects.raw IS 'The row as read';
COMMENT ON COLUMN rejects.reason IS 'Why it was rejected';

COMMENT ON TABLE curated IS 'Rows a curation rule removed during an ingest, with the rule';
COMMENT ON COLUMN curated.ingest_id IS 'Ingest that read the row (ingests.ingest_id)';
COMMENT ON COLUMN curated.row_ref IS 'The row''s external id';
COMMENT ON COLUMN curated.raw IS 'The row as read';
COMMENT ON COLUMN curated.rule IS 'Curation rule that removed it (matstore.curation.RULES)';

COMMENT ON TABLE sources IS 'One row per source name: whether its property values are DFT (and which functional) or experiment';
COMMENT ON COLUMN sources.name IS 'Source name as in materials.source and ingests.source';
COMMENT ON COLUMN sources.kind IS 'dft, experiment or unknown';
COMMENT ON COLUMN sources.method IS 'Level of theory where known (e.g. PBE)';
COMMENT ON COLUMN sources.description IS 'What the source is';

COMMENT ON TABLE compositions IS 'Distinct reduced compositions; every other table refers to them by composition_id';
COMMENT ON COLUMN compositions.composition_id IS 'Deterministic 64-bit key of the reduced element->count map (matstore.compositions)';
COMMENT ON COLUMN compositions.formula IS 'Reduced formula (pymatgen reduced_formula of the integer map), e.g. Fe2O3';
COMMENT ON COLUMN compositions.elements IS 'Element symbols in canonical (electronegativity) order';
COMMENT ON COLUMN compositions.counts IS 'Smallest integer count of each element, same order as elements';
COMMENT ON COLUMN compositions.n_elements IS 'Number of distinct elements';
COMMENT ON COLUMN compositions.n_atoms IS 'Atoms in the reduced formula unit';

COMMENT ON TABLE materials IS 'One row per entry of a source (an OQMD entry, an mp-id, a file row) and its composition';
COMMENT ON COLUMN materials.material_id IS 'Deterministic hash of (source, external_id)';
COMMENT ON COLUMN materials.ingest_id IS 'Ingest that wrote it (ingests.ingest_id)';
COMMENT ON COLUMN materials.source IS 'Source name (sources.name)';
COMMENT ON COLUMN materials.external_id IS 'The source''s id: OQMD entry_id, mp-id, or file#row';
COMMENT ON COLUMN materials.composition_id IS 'Its composition (compositions.composition_id)';
COMMENT ON COLUMN materials.raw_formula IS 'Formula as the source wrote it';

COMMENT ON TABLE properties IS 'Property values of materials as their source gives them (never mixed across sources)';
COMMENT ON COLUMN properties.material_id IS 'The material (materials.material_id)';
COMMENT ON COLUMN properties.composition_id IS 'Its composition (compositions.composition_id)';
COMMENT ON COLUMN properties.name IS 'Property name: formation_energy_per_atom, band_gap, energy_above_hull, ...';
COMMENT ON COLUMN properties.value IS 'Value in the row''s unit (formation_energy_per_atom: eV/atom; band_gap: eV)';
COMMENT ON COLUMN properties.unit IS 'Unit of value, e.g. eV/atom or eV';

COMMENT ON TABLE features IS 'Cached featurizer output per composition (matstore.features)';
COMMENT ON COLUMN features.composition_id IS 'The composition (compositions.composition_id)';
COMMENT ON COLUMN features.featurizer IS 'Featurizer name: onehot, magpie, fractions, or several joined with +';
COMMENT ON COLUMN features.version IS 'Featurizer version; a vector of another version is stale';
COMMENT ON COLUMN features.vector IS 'Feature values, flattened, in the featurizer''s label order (unitless or the element property''s unit)';

COMMENT ON TABLE validity IS 'Chemical plausibility checks (SMACT) per composition and checker version';
COMMENT ON COLUMN validity.composition_id IS 'The composition (compositions.composition_id)';
COMMENT ON COLUMN validity.checker_version IS 'Checker version: oxidation-state set and smact version';
COMMENT ON COLUMN validity.charge_neutral IS 'Some oxidation-state assignment sums to zero';
COMMENT ON COLUMN validity.electronegativity_balanced IS 'Some charge-neutral assignment passes the Pauling electronegativity test';
COMMENT ON COLUMN validity.smact_valid IS 'smact.screening.smact_validity verdict';
COMMENT ON COLUMN validity.oxidation_states IS 'Most probable balanced assignment: one oxidation state (elementary charges) per element of compositions.elements; NULL where not balanced';

COMMENT ON TABLE validity_checkers IS 'Checker version matstore last wrote per oxidation-state set, and which one the views call valid (local bookkeeping, not merged)';
COMMENT ON COLUMN validity_checkers.oxidation_set IS 'Oxidation-state set name (matstore.validity.OXIDATION_SETS)';
COMMENT ON COLUMN validity_checkers.checker_version IS 'Checker version last written for this set';
COMMENT ON COLUMN validity_checkers.is_default IS 'Whether the views use this set';
COMMENT ON COLUMN validity_checkers.updated_at IS 'When it was last written (local time)';

COMMENT ON TABLE model_versions IS 'Trained models, one row per version: config, training data, split, metrics, weights and model card';
COMMENT ON COLUMN model_versions.model_id IS 'Model id (small integer, remapped on merge)';
COMMENT ON COLUMN model_versions.name IS 'Preset or user name, e.g. gan-icsd';
COMMENT ON COLUMN model_versions.version IS 'Version number per name: 1, 2, ...';
COMMENT ON COLUMN model_versions.kind IS 'wgan, autoencoder, cnn, elemnet or rf';
COMMENT ON COLUMN model_versions.config IS 'The network''s explicit config (JSON): rebuilds the module';
COMMENT ON COLUMN model_versions.hyperparams IS 'Training settings (JSON): preset, property, featurizer, target_source, epochs, lr, ...';
COMMENT ON COLUMN model_versions.training_query IS 'SQL that selected the training compositions (and targets), as run';
COMMENT ON COLUMN model_versions.training_rows IS 'Compositions trained on (train + val + test, count)';
COMMENT ON COLUMN model_versions.data_hash IS 'Hash of the training compositions and targets';
COMMENT ON COLUMN model_versions.split IS 'Train/val/test split (JSON): method, seed, fractions, n_train, n_val, n_test';
COMMENT ON COLUMN model_versions.metrics IS 'Metrics (JSON): val/test mae and rmse in the target''s unit, r2; generation metrics in %';
COMMENT ON COLUMN model_versions.weights IS 'Weights: torch.save bytes (load with weights_only=True; a card and a state_dict) or a matstore-forest-v1 array archive';
COMMENT ON COLUMN model_versions.weights_sha256 IS 'sha256 of weights (hex)';
COMMENT ON COLUMN model_versions.software IS 'Software versions at training (JSON)';
COMMENT ON COLUMN model_versions.device IS 'Device trained on (cpu, cuda, ...)';
COMMENT ON COLUMN model_versions.seed IS 'Random seed of training and split';
COMMENT ON COLUMN model_versions.created_at IS 'When it was saved (local time)';
COMMENT ON COLUMN model_versions.card IS 'Model card (JSON): architecture, inputs (featurizer, shape, labels), target (property, unit, source); NULL for versions saved before cards';

COMMENT ON TABLE composition_sets IS 'Named lists of compositions: a model''s training split (role train/val/test) or any list to check generated samples against';
COMMENT ON COLUMN composition_sets.set_name IS 'Set name, e.g. gan-mp@1/train or leave-out';
COMMENT ON COLUMN composition_sets.composition_id IS 'A member (compositions.composition_id)';
COMMENT ON COLUMN composition_sets.model_id IS 'Model whose split this is (NULL: a plain list)';
COMMENT ON COLUMN composition_sets.role IS 'train, holdout, val or test (NULL: a plain list)';
COMMENT ON COLUMN composition_sets.created_at IS 'When it was written (local time)';

COMMENT ON TABLE runs IS 'Generation and prediction runs: model, parameters, status, throughput';
COMMENT ON COLUMN runs.run_id IS 'Run id (small integer, remapped on merge)';
COMMENT ON COLUMN runs.kind IS 'generate or predict';
COMMENT ON COLUMN runs.model_id IS 'Model run (model_versions.model_id)';
COMMENT ON COLUMN runs.params IS 'Run options (JSON)';
COMMENT ON COLUMN runs.seed IS 'Random seed';
COMMENT ON COLUMN runs.device IS 'Device it ran on (cpu, cuda, ...)';
COMMENT ON COLUMN runs.status IS 'running, done, failed or interrupted';
COMMENT ON COLUMN runs.started_at IS 'Start time (local time)';
COMMENT ON COLUMN runs.finished_at IS 'End time (local time); NULL while running';
COMMENT ON COLUMN runs.n_requested IS 'Samples or rows asked for (count)';
COMMENT ON COLUMN runs.n_written IS 'Samples or predictions written (count)';
COMMENT ON COLUMN runs.rows_per_s IS 'Throughput (rows/s)';
COMMENT ON COLUMN runs.pid IS 'Process id, to detect a killed run';
COMMENT ON COLUMN runs.host IS 'Host name of the process';
COMMENT ON COLUMN runs.pid_started IS 'Start time of the process (epoch seconds, from /proc; NULL where unknown)';

COMMENT ON TABLE run_batches IS 'One row per committed batch of a run: its resume point';
COMMENT ON COLUMN run_batches.run_id IS 'The run (runs.run_id)';
COMMENT ON COLUMN run_batches.batch_no IS 'Batch number within the run, from 0';
COMMENT ON COLUMN run_batches.n_samples IS 'Samples drawn in the batch (count)';
COMMENT ON COLUMN run_batches.n_decodable IS 'Samples that decoded to a composition (count)';
COMMENT ON COLUMN run_batches.seconds IS 'Time the batch took (s)';
COMMENT ON COLUMN run_batches.committed_at IS 'When it was committed (local time)';

COMMENT ON TABLE generated IS 'Raw generated samples that decoded to a composition, duplicates kept';
COMMENT ON COLUMN generated.run_id IS 'The run (runs.run_id)';
COMMENT ON COLUMN generated.batch_no IS 'Batch number within the run';
COMMENT ON COLUMN generated.sample_no IS 'Sample number within the run';
COMMENT ON COLUMN generated.composition_id IS 'Decoded composition (compositions.composition_id)';

COMMENT ON TABLE predictions IS 'Predicted property values per composition and model version';
COMMENT ON COLUMN predictions.composition_id IS 'The composition (compositions.composition_id)';
COMMENT ON COLUMN predictions.model_id IS 'Predictor version (model_versions.model_id)';
COMMENT ON COLUMN predictions.run_id IS 'Prediction run (runs.run_id)';
COMMENT ON COLUMN predictions.property IS 'Property predicted: formation_energy_per_atom or band_gap';
COMMENT ON COLUMN predictions.value IS 'Predicted value (formation_energy_per_atom: eV/atom; band_gap: eV)';

