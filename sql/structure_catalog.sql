-- Which crystal structures does the store hold, of which composition, where from (source entry,
-- ingest or run, parent) and of which symmetry? One row per structure; known structures name
-- their source and its kind (dft / experiment); template structures their template (parent).
-- key: structure_id
SELECT s.structure_id,
       c.formula,
       s.composition_id,
       s.origin,
       s.method,
       s.n_sites,
       s.volume,
       s.volume / s.n_sites AS volume_per_atom,
       s.spacegroup_number,
       s.spacegroup_symbol,
       s.prototype,
       m.source,
       src.kind AS source_kind,
       m.external_id,
       s.material_id,
       s.ingest_id,
       s.run_id,
       s.parent_structure_id,
       pc.formula AS parent_formula,
       s.details,
       s.created_at
FROM structures s
JOIN compositions c USING (composition_id)
LEFT JOIN materials m ON m.material_id = s.material_id
LEFT JOIN sources src ON src.name = m.source
LEFT JOIN structures ps ON ps.structure_id = s.parent_structure_id
LEFT JOIN compositions pc ON pc.composition_id = ps.composition_id
