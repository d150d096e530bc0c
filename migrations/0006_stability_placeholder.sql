-- PLACEHOLDER: replaced by the hull branch's migration at merge (the lead drops this file).
-- It exists only so that sql/screen_stable_semiconductors.sql compiles on this branch; the DDL
-- is the one agreed with the hull branch, verbatim.
CREATE TABLE stability (
    composition_id BIGINT NOT NULL,
    model_id INTEGER NOT NULL,        -- FE predictor version whose prediction was placed on the hull; 0 = the reference source's own DFT energy (known phases)
    reference VARCHAR NOT NULL,       -- materials.source of the reference phases, e.g. 'oqmd'
    reference_ingests INTEGER[],
    formation_energy_per_atom DOUBLE, -- eV/atom
    e_above_hull DOUBLE,              -- eV/atom; may be negative (below the known hull)
    decomposition STRUCT(composition_id BIGINT, formula VARCHAR, fraction DOUBLE)[],
    run_id INTEGER,
    PRIMARY KEY (composition_id, model_id, reference)
);
