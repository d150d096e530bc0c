-- Every candidate placed on a hull, with what a chemist needs to judge the number: one row per
-- (candidate, formation-energy model version, reference) from stability (model_id > 0). The
-- hull's trust: coverage / ternary_coverage / missing_systems (sub-systems where the reference
-- holds no phase: there the hull is the elements' tie plane), products_dft / products_predicted.
-- The model's trust: pred_formation_energy_std (ensemble spread), fe_model_bias / fe_model_mae
-- (model_bias over its known phases on the DFT hull of the same source, also for the 'SOURCE+model'
-- and 'SOURCE:model' hulls; _family: the hit's anion family),
-- e_above_hull_bar (the number with both). The ions' trust: rarest_ion(_share) (ion_plausibility).
-- preferred_hull: whether this row is the hull the hull screens show by default for its (candidate,
-- model, source): the mixed hull ('SOURCE+model') where it was computed, else the DFT hull, else
-- the model-only hull (the mixed hull classified hidden on-hull phases best on held-out data:
-- docs/benchmarks/rediscovery.md).
-- The shipped screens select from this view (hull screens) or share its columns.
-- depends: anion_families, candidates, model_bias, model_refs
-- key: composition_id, fe_model, reference
WITH bias AS (
    SELECT model_id, reference, mean_error, mae, n_phases FROM model_bias WHERE grouping = 'all'
),
fam AS (
    SELECT model_id, reference, group_value AS anion_family, mean_error, mae, n_phases
    FROM model_bias WHERE grouping = 'anion_family'
)
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       c.novel,
       c.valid,
       c.ions,
       c.rarest_ion,
       c.rarest_ion_share,
       s.e_above_hull,
       concat_ws('; ', printf('%+.3f eV/atom', s.e_above_hull),
                 CASE WHEN fp.std IS NULL THEN 'no ensemble std'
                      ELSE printf('± %.3f ensemble std', fp.std) END,
                 CASE WHEN b.mean_error IS NULL THEN 'model bias not measured (matstore bias)'
                      ELSE printf('model bias %+.3f, MAE %.3f on %d known phases', b.mean_error, b.mae, b.n_phases) END,
                 CASE WHEN f.mean_error IS NULL THEN NULL
                      ELSE printf('%s: bias %+.3f, MAE %.3f (n=%d)', f.anion_family, f.mean_error, f.mae, f.n_phases) END
                 ) AS e_above_hull_bar,
       s.formation_energy_per_atom AS pred_formation_energy_per_atom,
       fp.std AS pred_formation_energy_std,
       b.mean_error AS fe_model_bias,
       b.mae AS fe_model_mae,
       b.n_phases AS fe_model_bias_phases,
       f.mean_error AS fe_model_bias_family,
       a.anion_family,
       c.pred_band_gap,
       c.pred_band_gap_std,
       c.pred_band_gap_p_metal,
       fe.ref AS fe_model,
       c.pred_band_gap_model AS band_gap_model,
       s.reference,
       row_number() OVER (PARTITION BY s.composition_id, s.model_id, regexp_replace(s.reference, '(\+|:)model$', '')
                          ORDER BY CASE WHEN s.reference LIKE '%+model' THEN 0
                                        WHEN s.reference LIKE '%:model' THEN 2 ELSE 1 END) = 1 AS preferred_hull,
       s.reference_ingests,
       s.coverage,
       s.ternary_coverage,
       s.missing_systems,
       s.products_dft,
       s.products_predicted,
       s.decomposition,
       list_bool_and(list_transform(s.decomposition,
                                    lambda d: regexp_full_match(d.formula, '[A-Z][a-z]?[0-9]*'))) AS decomposes_to_elements,
       c.times_generated,
       c.first_run,
       c.generated_by
FROM candidates c
JOIN stability s USING (composition_id)
JOIN model_refs fe ON fe.model_id = s.model_id
JOIN anion_families a USING (composition_id)
LEFT JOIN predictions fp ON fp.composition_id = s.composition_id AND fp.model_id = s.model_id
                        AND fp.property = 'formation_energy_per_atom'
LEFT JOIN bias b ON b.model_id = s.model_id AND b.reference = regexp_replace(s.reference, '(\+|:)model$', '')
LEFT JOIN fam f ON f.model_id = s.model_id AND f.reference = regexp_replace(s.reference, '(\+|:)model$', '')
                AND f.anion_family = a.anion_family
WHERE s.model_id > 0
