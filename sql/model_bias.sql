-- How far off is each formation-energy model version on the hull, measured on known phases?
-- For the reference's own phases that the version predicted and did not train on (not in its
-- composition_sets roles train/val), error = the predicted phase's e_above_hull minus its DFT
-- e_above_hull on the same DFT hull (stability rows of model 0); mean_error > 0: the model
-- places known phases above their hull (too pessimistic), < 0 too optimistic. Grouped over all
-- phases, by number of elements (2, 3, 4, 5+) and by anion family (anion_families). Filled by
-- `matstore bias --model M` (predicts the phases and places them); screens show it per hit.
-- depends: anion_families, model_refs
-- key: model_id, reference, grouping, group_value
WITH e AS (
    SELECT m.model_id, m.reference, c.n_elements, a.anion_family,
           m.e_above_hull - d.e_above_hull AS err
    FROM stability m
    JOIN stability d ON d.composition_id = m.composition_id AND d.reference = m.reference
                    AND d.model_id = 0
    JOIN compositions c ON c.composition_id = m.composition_id
    JOIN anion_families a ON a.composition_id = m.composition_id
    WHERE m.model_id > 0 AND m.e_above_hull IS NOT NULL AND d.e_above_hull IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM composition_sets t WHERE t.model_id = m.model_id
                      AND t.composition_id = m.composition_id AND t.role IN ('train', 'val'))
),
g AS (
    SELECT model_id, reference, 'all' AS grouping, 'all' AS group_value, err FROM e
    UNION ALL
    SELECT model_id, reference, 'n_elements',
           CASE WHEN n_elements >= 5 THEN '5+' ELSE n_elements::VARCHAR END, err FROM e
    UNION ALL
    SELECT model_id, reference, 'anion_family', anion_family, err FROM e
)
SELECT g.model_id, mv.ref AS fe_model, g.reference, g.grouping, g.group_value,
       count(*) AS n_phases,
       avg(g.err) AS mean_error,
       avg(abs(g.err)) AS mae
FROM g
JOIN model_refs mv ON mv.model_id = g.model_id
GROUP BY ALL
