-- Generation quality over the samples as drawn (issue 14): a generator's distribution is that of
-- its samples, repeats included. Over distinct compositions (the older columns) the histograms
-- drift with N (at 1M samples the distinct set is mostly rare many-element compositions, the
-- common ones collapse into few rows) and validity is not the "of samples" the goals name.
ALTER TABLE generation_quality ADD COLUMN n_samples_checked BIGINT;
ALTER TABLE generation_quality ADD COLUMN charge_neutral_samples_pct DOUBLE;
ALTER TABLE generation_quality ADD COLUMN electronegativity_balanced_samples_pct DOUBLE;
ALTER TABLE generation_quality ADD COLUMN both_valid_samples_pct DOUBLE;
ALTER TABLE generation_quality ADD COLUMN tv_element_count_samples DOUBLE;
ALTER TABLE generation_quality ADD COLUMN tv_element_frequency_samples DOUBLE;
COMMENT ON COLUMN generation_quality.n_samples_checked IS 'decodable samples whose composition has a validity row of the default checker (the denominator of the *_samples_pct validity columns); NULL in rows measured before this column existed';
COMMENT ON COLUMN generation_quality.charge_neutral_samples_pct IS 'charge-neutral samples (% of n_samples_checked; each sample counts, repeats included)';
COMMENT ON COLUMN generation_quality.electronegativity_balanced_samples_pct IS 'electronegativity-balanced samples (% of n_samples_checked)';
COMMENT ON COLUMN generation_quality.both_valid_samples_pct IS 'charge-neutral and electronegativity-balanced samples (% of n_samples_checked)';
COMMENT ON COLUMN generation_quality.tv_element_count_samples IS 'total variation distance (0-1) between the elements-per-composition histogram of the decodable samples (repeats included) and that of the reference compositions';
COMMENT ON COLUMN generation_quality.tv_element_frequency_samples IS 'total variation distance (0-1) between the per-element frequencies of the decodable samples (repeats included) and of the reference compositions';
