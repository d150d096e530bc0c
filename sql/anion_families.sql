-- Which anion family does each composition belong to? Its most electronegative element among
-- F, O, Cl, N, Br, I, S, C, Se, H, P, As, Te, B, Sb (Pauling order) names it (fluoride, oxide,
-- ...); none of them: 'intermetallic'. The model-bias view groups its errors by this family.
-- key: composition_id
WITH f AS (
    SELECT ['F', 'O', 'Cl', 'N', 'Br', 'I', 'S', 'C', 'Se', 'H', 'P', 'As', 'Te', 'B', 'Sb'] AS anions,
           ['fluoride', 'oxide', 'chloride', 'nitride', 'bromide', 'iodide', 'sulfide', 'carbide',
            'selenide', 'hydride', 'phosphide', 'arsenide', 'telluride', 'boride', 'antimonide'] AS names
)
SELECT c.composition_id,
       CASE WHEN c.n_elements < 2 THEN 'element'
            ELSE coalesce(f.names[list_min(list_transform(c.elements, lambda e: list_position(f.anions, e)))],
                          'intermetallic') END AS anion_family
FROM compositions c, f
