-- Predictions that say how sure they are (issue 13): an ensemble's standard deviation over its
-- members and a two-stage band-gap model's metal probability, beside the value (its mean).
ALTER TABLE predictions ADD COLUMN std DOUBLE;
ALTER TABLE predictions ADD COLUMN p_metal DOUBLE;
COMMENT ON COLUMN predictions.value IS 'Predicted value (formation_energy_per_atom: eV/atom; band_gap: eV, never negative); an ensemble''s mean over its members';
COMMENT ON COLUMN predictions.std IS 'Standard deviation of the value: the spread of an ensemble''s members (sample std, ddof 1) times the version''s std_scale, fitted on its validation rows (same unit as value); NULL for a single model';
COMMENT ON COLUMN predictions.p_metal IS 'Two-stage band-gap models: probability that the composition is a metal (gap 0), the mean over members; the value is 0 for a member whose p_metal >= 0.5; NULL for other models';
