-- Which stored formation energies are physically implausible? |formation_energy_per_atom| > 5
-- eV/atom (matstore.curation.FE_PHYSICAL_MAX; the most negative known, fluorides, are about -4.5)
-- are kept as ingested but flagged here and counted at ingest, e.g. U2PaCu at 43 eV/atom.
-- key: material_id
SELECT m.material_id, m.source, m.ingest_id, m.external_id, c.formula, p.value AS formation_energy_per_atom
FROM properties p
JOIN materials m USING (material_id)
JOIN compositions c ON c.composition_id = p.composition_id
WHERE p.name = 'formation_energy_per_atom' AND abs(p.value) > 5.0
