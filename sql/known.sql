-- Which compositions are known (seen in any ingested source), and from which sources?
-- A model's label (an active-learning oracle's source, kind 'model') does not make a
-- composition known: it is a prediction, and a proposal it labelled stays novel.
-- key: composition_id
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       list(DISTINCT m.source ORDER BY m.source) AS sources,
       count(*) AS n_entries
FROM compositions c
JOIN materials m USING (composition_id)
LEFT JOIN sources s ON s.name = m.source
WHERE s.kind IS DISTINCT FROM 'model'
GROUP BY c.composition_id, c.formula, c.n_elements
