-- Which compositions are chemically plausible? SMACT charge neutrality, Pauling electronegativity
-- balance and the smact_validity verdict, from the newest checker version in the store
-- (NULL flags: smact has no data for one of the elements).
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       v.charge_neutral,
       v.electronegativity_balanced,
       v.smact_valid,
       v.checker_version
FROM compositions c
JOIN validity v USING (composition_id)
WHERE v.checker_version = (SELECT max(checker_version) FROM validity)
