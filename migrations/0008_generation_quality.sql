-- How close is a generation run to real materials (issue 14, item 1): validity, uniqueness,
-- novelty, recovery and distribution distances, one row per run, written by matstore.quality.
CREATE TABLE generation_quality (
    run_id INTEGER PRIMARY KEY,
    model_id INTEGER,
    reference VARCHAR NOT NULL,
    checker_version VARCHAR,
    n_samples BIGINT NOT NULL,
    n_decodable BIGINT NOT NULL,
    n_unique BIGINT NOT NULL,
    unique_pct DOUBLE,
    n_novel BIGINT NOT NULL,
    novel_pct DOUBLE,
    n_checked BIGINT NOT NULL,
    charge_neutral_pct DOUBLE,
    electronegativity_balanced_pct DOUBLE,
    both_valid_pct DOUBLE,
    train_size BIGINT NOT NULL,
    train_recovered BIGINT NOT NULL,
    train_recovery_pct DOUBLE,
    leave_out_size BIGINT NOT NULL,
    leave_out_recovered BIGINT NOT NULL,
    leave_out_recovery_pct DOUBLE,
    tv_element_count DOUBLE,
    tv_element_frequency DOUBLE,
    frechet_magpie DOUBLE,
    frechet_n_generated BIGINT NOT NULL,
    frechet_n_reference BIGINT NOT NULL,
    frechet_seed BIGINT NOT NULL,
    computed_at TIMESTAMP NOT NULL
);
COMMENT ON TABLE generation_quality IS 'Quality of each generation run against real materials (matstore.quality.measure; refreshed by `matstore quality`, a rerun replaces the run''s row); percentages 0-100 over the run''s distinct compositions unless said otherwise';
COMMENT ON COLUMN generation_quality.run_id IS 'the generate run measured (runs.run_id)';
COMMENT ON COLUMN generation_quality.model_id IS 'the generator version that drew it (model_versions.model_id)';
COMMENT ON COLUMN generation_quality.reference IS 'what the distances compare with: ''training set'' (the model version''s composition_sets role train) or ''known'' (the known view, where the version stored no split)';
COMMENT ON COLUMN generation_quality.checker_version IS 'validity checker version whose rows gave the validity % (the default one, validity_checkers.is_default)';
COMMENT ON COLUMN generation_quality.n_samples IS 'samples drawn (sum of run_batches.n_samples)';
COMMENT ON COLUMN generation_quality.n_decodable IS 'samples that decoded to a composition (sum of run_batches.n_decodable): the N of uniqueness at N';
COMMENT ON COLUMN generation_quality.n_unique IS 'distinct compositions of the run';
COMMENT ON COLUMN generation_quality.unique_pct IS 'uniqueness at N: n_unique / n_decodable (%)';
COMMENT ON COLUMN generation_quality.n_novel IS 'distinct compositions not in the known view';
COMMENT ON COLUMN generation_quality.novel_pct IS 'novelty: n_novel / n_unique (%)';
COMMENT ON COLUMN generation_quality.n_checked IS 'distinct compositions with a validity row of the default checker (the denominator of the validity %)';
COMMENT ON COLUMN generation_quality.charge_neutral_pct IS 'charge-neutral under the default oxidation-state set (% of n_checked)';
COMMENT ON COLUMN generation_quality.electronegativity_balanced_pct IS 'Pauling electronegativity balanced (% of n_checked)';
COMMENT ON COLUMN generation_quality.both_valid_pct IS 'charge-neutral and electronegativity balanced (% of n_checked)';
COMMENT ON COLUMN generation_quality.train_size IS 'distinct compositions of the model version''s training set (composition_sets role train)';
COMMENT ON COLUMN generation_quality.train_recovered IS 'training compositions the run generated';
COMMENT ON COLUMN generation_quality.train_recovery_pct IS 'train_recovered / train_size (%), MatGAN Table 3.3';
COMMENT ON COLUMN generation_quality.leave_out_size IS 'distinct compositions of the version''s leave-out set (composition_sets roles val, test, holdout)';
COMMENT ON COLUMN generation_quality.leave_out_recovered IS 'leave-out compositions the run generated';
COMMENT ON COLUMN generation_quality.leave_out_recovery_pct IS 'leave_out_recovered / leave_out_size (%)';
COMMENT ON COLUMN generation_quality.tv_element_count IS 'total variation distance (0-1) between the histograms of elements per composition of the distinct generated and the reference compositions';
COMMENT ON COLUMN generation_quality.tv_element_frequency IS 'total variation distance (0-1) between the per-element frequencies (share of compositions containing the element, normalised over elements) of generated and reference';
COMMENT ON COLUMN generation_quality.frechet_magpie IS 'Frechet distance between Gaussians fitted to the Magpie vectors (132 values, NaN-free rows) of generated and reference compositions: |mu1-mu2|^2 + Tr(S1+S2-2 sqrtm(S1 S2)) (squared Magpie units; the FID formula)';
COMMENT ON COLUMN generation_quality.frechet_n_generated IS 'generated compositions in the Frechet fit (a seeded subsample of at most matstore.quality.FRECHET_MAX)';
COMMENT ON COLUMN generation_quality.frechet_n_reference IS 'reference compositions in the Frechet fit (subsampled likewise)';
COMMENT ON COLUMN generation_quality.frechet_seed IS 'seed of the subsampling rng';
COMMENT ON COLUMN generation_quality.computed_at IS 'when the row was computed (local time)';
