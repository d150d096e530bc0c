-- Crystal structures (issue 26): the layer after compositions. One row per distinct structure of
-- one origin: known (ingested from a file or an OPTIMADE database), template (template-based
-- prediction), generated (a generative model), relaxed (an ML potential or DFT relaxation of a
-- parent). Arrays, not text: lattice rows are the cell vectors a, b, c in Å; frac_coords[i] are the
-- fractional coordinates of species[i]. Written and read through matstore.structures (pymatgen
-- Structures in, ids out); structure_id is a hash, so merging stores never duplicates a structure.

CREATE TABLE structures (
    structure_id        BIGINT PRIMARY KEY,      -- blake2b-64 of (origin, method, material_id, fingerprint)
    composition_id      BIGINT NOT NULL,         -- compositions.composition_id of the reduced formula
    material_id         BIGINT,                  -- known structures: the source entry (materials)
    origin              VARCHAR NOT NULL,        -- known, template, generated, relaxed
    method              VARCHAR NOT NULL,        -- how it was made: cif, optimade, template-substitution, pyxtal-random, ...
    parent_structure_id BIGINT,                  -- template / relaxed: the structure it was made from
    ingest_id           INTEGER,                 -- known: the ingest that read it
    run_id              INTEGER,                 -- template / generated / relaxed: the run that made it
    lattice             DOUBLE[3][3] NOT NULL,   -- cell vectors as rows, Å
    species             VARCHAR[] NOT NULL,      -- element symbol per site
    frac_coords         DOUBLE[3][] NOT NULL,    -- fractional coordinates per site
    n_sites             INTEGER NOT NULL,
    volume              DOUBLE NOT NULL,         -- Å^3
    spacegroup_number   INTEGER,                 -- 1..230 (spglib at symprec); NULL if spglib found none
    spacegroup_symbol   VARCHAR,                 -- Hermann-Mauguin, e.g. Pm-3m
    symprec             DOUBLE,                  -- spglib tolerance used (Å)
    prototype           VARCHAR,                 -- anonymous formula _ space group number _ sorted Wyckoff letters
    fingerprint         VARCHAR NOT NULL,        -- dedupe key of the structure itself (matstore.structures.fingerprint)
    details             JSON,                    -- method specifics: template, substitution, ElMD distance, volume rule, ...
    created_at          TIMESTAMP NOT NULL
);

COMMENT ON TABLE structures IS 'Crystal structures, one row per distinct structure of one origin and method (known, template, generated, relaxed); arrays in Å and fractional coordinates';
COMMENT ON COLUMN structures.structure_id IS 'Deterministic 64-bit hash of (origin, method, material_id, fingerprint): re-ingesting or re-predicting the same structure adds nothing';
COMMENT ON COLUMN structures.composition_id IS 'Its composition (compositions.composition_id) of the reduced formula of the cell';
COMMENT ON COLUMN structures.material_id IS 'Known structures: the source entry it was read with (materials.material_id), whose properties it carries; NULL otherwise';
COMMENT ON COLUMN structures.origin IS 'known (read from a source), template (template-based prediction), generated (a generative model), relaxed (relaxation of parent_structure_id)';
COMMENT ON COLUMN structures.method IS 'How it was made: cif, poscar, extxyz, json, table, mgmno-image, optimade (known); template-substitution, pyxtal-random (template); a model or potential name for generated/relaxed';
COMMENT ON COLUMN structures.parent_structure_id IS 'The structure it was made from (template or relaxation input; structures.structure_id); NULL for known structures';
COMMENT ON COLUMN structures.ingest_id IS 'Known structures: the ingest that read it (ingests.ingest_id)';
COMMENT ON COLUMN structures.run_id IS 'Structures made by matstore: the run that made it (runs.run_id)';
COMMENT ON COLUMN structures.lattice IS 'Cell vectors a, b, c as the rows of a 3x3 matrix (Å)';
COMMENT ON COLUMN structures.species IS 'Element symbol of each site, in site order';
COMMENT ON COLUMN structures.frac_coords IS 'Fractional coordinates of each site (unitless, site order as species)';
COMMENT ON COLUMN structures.n_sites IS 'Number of sites in the stored cell';
COMMENT ON COLUMN structures.volume IS 'Cell volume (Å^3)';
COMMENT ON COLUMN structures.spacegroup_number IS 'International space group number (1-230) found by spglib at symprec; NULL where spglib found none';
COMMENT ON COLUMN structures.spacegroup_symbol IS 'Hermann-Mauguin symbol of that space group, e.g. Pm-3m';
COMMENT ON COLUMN structures.symprec IS 'Symmetry tolerance used for the space group and prototype (Å)';
COMMENT ON COLUMN structures.prototype IS 'Prototype label: anonymous formula, space group number and sorted Wyckoff letters, e.g. ABC3_221_abd';
COMMENT ON COLUMN structures.fingerprint IS 'Hash of the spglib-standardized primitive cell (species, lattice lengths/angles to 1e-3 Å/deg, positions to 1e-3): one structure, one fingerprint, whatever its site order';
COMMENT ON COLUMN structures.details IS 'Method specifics (JSON): template structure and formula, substitution map and rule, ElMD distance, volume rule, pyxtal seed, ...';
COMMENT ON COLUMN structures.created_at IS 'When it was written (local time)';

-- The two structure sources `matstore ingest` knows (matstore.sources.SOURCES); a name already
-- taken in an older store (a --source-name) keeps its recorded kind.
INSERT INTO sources
SELECT * FROM (VALUES
    ('structures', 'unknown', NULL, 'a crystal-structure file (CIF, POSCAR, extended XYZ, pymatgen JSON, a table with a CIF column, crystal GAN images) ingested without --source-name / --kind'),
    ('optimade', 'unknown', NULL, 'an OPTIMADE database''s structures (--url), ingested without --source-name')) v(name, kind, method, description)
WHERE name NOT IN (SELECT name FROM sources);
