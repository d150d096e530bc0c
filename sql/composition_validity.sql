-- Which compositions are chemically plausible? SMACT charge neutrality, Pauling electronegativity
-- balance and the smact_validity verdict under the store's default oxidation-state set (the
-- checker version validity_checkers marks is_default; NULL flags: smact has no data for one of
-- the elements), and one oxidation-state assignment, e.g. ions = 'Mg2+ Zr4+ S2-' (NULL where
-- none is stored: not balanced, or a row of a checker older than assignments).
-- key: composition_id
SELECT c.composition_id,
       c.formula,
       c.n_elements,
       v.charge_neutral,
       v.electronegativity_balanced,
       v.smact_valid,
       v.oxidation_states,
       array_to_string(list_transform(list_zip(c.elements, v.oxidation_states),
                                      lambda x: x[1] || CASE WHEN abs(x[2]) = 1 THEN '' ELSE abs(x[2])::VARCHAR END
                                                     || CASE WHEN x[2] > 0 THEN '+' ELSE '-' END), ' ') AS ions,
       k.oxidation_set,
       v.checker_version
FROM compositions c
JOIN validity v USING (composition_id)
JOIN validity_checkers k USING (checker_version)
WHERE k.is_default
