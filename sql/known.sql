-- Which compositions are known (seen in any ingested source), and from which sources?
-- key: composition_id
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       list(DISTINCT m.source ORDER BY m.source) AS sources,
       count(*) AS n_entries
FROM compositions c
JOIN materials m USING (composition_id)
GROUP BY c.composition_id, c.formula, c.n_elements
