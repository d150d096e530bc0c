-- What did the source say about each known structure? One row per (structure, property): the
-- value its source entry carries (properties of structures.material_id), with unit and source, never mixed.
-- key: structure_id, name
SELECT s.structure_id,
       c.formula,
       p.name,
       p.value,
       p.unit,
       m.source,
       src.kind AS source_kind,
       src.method AS source_method
FROM structures s
JOIN compositions c USING (composition_id)
JOIN properties p ON p.material_id = s.material_id
JOIN materials m ON m.material_id = s.material_id
LEFT JOIN sources src ON src.name = m.source
