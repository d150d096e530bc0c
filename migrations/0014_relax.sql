-- Relaxation with a universal ML potential (issue 27): one row per (input structure, potential,
-- settings) with its status and energies; the relaxed structure itself is a structures row
-- (origin relaxed, parent_structure_id = the input). Structure-based stability rows name the
-- potential, the reference structures and the energy convention.

CREATE TABLE relaxations (
    structure_id            BIGINT NOT NULL,   -- the input structure (structures.structure_id)
    model_id                INTEGER NOT NULL,  -- the potential (model_versions, kind potential)
    settings_hash           VARCHAR NOT NULL,  -- sha256 of the settings JSON (runs.params.settings)
    run_id                  INTEGER,
    batch_no                INTEGER,           -- the chunk of the run it was relaxed in
    composition_id          BIGINT NOT NULL,
    relaxed_structure_id    BIGINT,            -- NULL where no structure came out (exploded, error)
    status                  VARCHAR NOT NULL,  -- converged, step_cap, time_limit, exploded, error
    steps                   INTEGER NOT NULL,
    fmax                    DOUBLE,
    energy_per_atom         DOUBLE,
    initial_energy_per_atom DOUBLE,
    volume_change           DOUBLE,
    n_sites                 INTEGER,
    seconds                 DOUBLE,
    message                 VARCHAR,
    created_at              TIMESTAMP NOT NULL,
    PRIMARY KEY (structure_id, model_id, settings_hash)
);

ALTER TABLE stability ADD COLUMN structure_id BIGINT;
ALTER TABLE stability ADD COLUMN convention VARCHAR;
ALTER TABLE stability ADD COLUMN reference_structures BIGINT[];

COMMENT ON TABLE relaxations IS 'Relaxations of structures with an ML potential (matstore.relax): FIRE over ASE''s FrechetCellFilter, status, steps, final max force, energies per atom in the potential''s convention, volume change';
COMMENT ON COLUMN relaxations.structure_id IS 'The input structure (structures.structure_id)';
COMMENT ON COLUMN relaxations.model_id IS 'The potential that relaxed it (model_versions.model_id of kind potential: package, version, weights sha256, energy convention)';
COMMENT ON COLUMN relaxations.settings_hash IS 'sha256 of the relaxation settings JSON (fmax, max_steps, time_limit, bounds; the run''s params.settings): other settings make other rows';
COMMENT ON COLUMN relaxations.run_id IS 'The relax run that wrote it (runs.run_id)';
COMMENT ON COLUMN relaxations.batch_no IS 'The chunk of that run it was relaxed in, structures advancing together (run_batches.batch_no)';
COMMENT ON COLUMN relaxations.composition_id IS 'Its composition (compositions.composition_id)';
COMMENT ON COLUMN relaxations.relaxed_structure_id IS 'The relaxed structure (structures.structure_id, origin relaxed); NULL where the status is exploded or error';
COMMENT ON COLUMN relaxations.status IS 'converged (max force <= fmax), step_cap (max_steps reached), time_limit (its compute time ran out), exploded (energy, forces or volume out of bounds), error (could not be evaluated)';
COMMENT ON COLUMN relaxations.steps IS 'FIRE steps taken (count)';
COMMENT ON COLUMN relaxations.fmax IS 'Final max force over atoms and the cell as FrechetCellFilter scales it (eV/Å); NULL for exploded/error';
COMMENT ON COLUMN relaxations.energy_per_atom IS 'Final total energy per atom predicted by the potential, in its convention (eV/atom; CHGNet/SevenNet: MP2020-compatible); NULL for exploded/error';
COMMENT ON COLUMN relaxations.initial_energy_per_atom IS 'Energy per atom of the input structure before relaxation (eV/atom, same convention)';
COMMENT ON COLUMN relaxations.volume_change IS 'Final volume / input volume - 1 (unitless)';
COMMENT ON COLUMN relaxations.n_sites IS 'Sites in the cell relaxed';
COMMENT ON COLUMN relaxations.seconds IS 'Compute charged to this structure: its atoms'' share of each batched potential call plus its own optimizer steps (s)';
COMMENT ON COLUMN relaxations.message IS 'Why it stopped, for time_limit, exploded and error';
COMMENT ON COLUMN relaxations.created_at IS 'When it was written (local time)';

COMMENT ON COLUMN stability.structure_id IS 'Structure-based rows: the relaxed structure placed on the hull (the lowest-energy polymorph of the composition under this potential); NULL for composition-based rows';
COMMENT ON COLUMN stability.convention IS 'Energy convention of the energies combined (structure-based rows: the potential''s, e.g. MP2020-compatible, and the elemental references'' source); NULL for composition-based rows';
COMMENT ON COLUMN stability.reference_structures IS 'Structure-based rows: the relaxed structures whose energies made the hull and the elemental references (structures.structure_id)';
