-- Energy above the lower convex hull of one reference source's known phases (matstore/stability).
CREATE TABLE stability (
    composition_id BIGINT NOT NULL,
    model_id INTEGER NOT NULL,
    reference VARCHAR NOT NULL,
    reference_ingests INTEGER[],
    formation_energy_per_atom DOUBLE,
    e_above_hull DOUBLE,
    decomposition STRUCT(composition_id BIGINT, formula VARCHAR, fraction DOUBLE)[],
    run_id INTEGER,
    hull_energy_per_atom DOUBLE,
    PRIMARY KEY (composition_id, model_id, reference)
);
COMMENT ON TABLE stability IS 'Energy above the lower convex hull (formation energy per atom vs composition) of the known phases of one reference source, one hull per chemical system, elements at 0 eV/atom; pymatgen PhaseDiagram semantics';
COMMENT ON COLUMN stability.composition_id IS 'the composition placed against the hull';
COMMENT ON COLUMN stability.model_id IS 'formation-energy predictor version whose prediction was placed on the hull; 0 = the reference source''s own DFT energy (known phases)';
COMMENT ON COLUMN stability.reference IS 'materials.source of the reference phases, e.g. oqmd';
COMMENT ON COLUMN stability.reference_ingests IS 'ingest ids whose phases made the hull';
COMMENT ON COLUMN stability.formation_energy_per_atom IS 'the energy placed against the hull (eV/atom)';
COMMENT ON COLUMN stability.e_above_hull IS 'energy above the hull (eV/atom); 0 on the hull; negative = below the known hull (would be a new stable phase); NULL where the energy is NULL';
COMMENT ON COLUMN stability.decomposition IS 'hull phases at this composition (the facet''s vertices) with their atom fractions';
COMMENT ON COLUMN stability.run_id IS 'the runs row that computed it (kind stability, or the generate run of a fused stage)';
COMMENT ON COLUMN stability.hull_energy_per_atom IS 'energy of the hull at this composition (eV/atom)';
