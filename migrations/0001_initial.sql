-- The store's tables. Ids of sources' rows (material_id) are deterministic hashes so that
-- re-ingesting and merging stores never duplicate; ids of our own work (ingests, models, runs)
-- are small integers, remapped on merge.

CREATE TABLE ingests (
    ingest_id      INTEGER PRIMARY KEY,
    source         VARCHAR NOT NULL,          -- oqmd, mp, icsd, csv, builtin
    uri            VARCHAR,                   -- file path or API URL
    params         JSON,                      -- options and curation settings
    status         VARCHAR NOT NULL,          -- running, done, failed, interrupted
    cursor         VARCHAR,                   -- resume point (next page URL, chunk number)
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP,
    rows_seen      BIGINT DEFAULT 0,
    rows_kept      BIGINT DEFAULT 0,          -- new materials written
    rows_rejected  BIGINT DEFAULT 0,          -- unparseable rows (see rejects)
    rows_curated   BIGINT DEFAULT 0,          -- rows removed by curation rules
    rows_duplicate BIGINT DEFAULT 0,          -- rows already in the store
    curation       JSON,                      -- rows removed per rule
    pid            INTEGER,                   -- writer process, to detect a killed ingest
    host           VARCHAR
);

CREATE TABLE rejects (
    ingest_id  INTEGER NOT NULL,
    row_ref    VARCHAR,                       -- line number, page/offset, or external id
    raw        VARCHAR,                       -- the row as read
    reason     VARCHAR NOT NULL
);

CREATE TABLE compositions (
    composition_id BIGINT PRIMARY KEY,        -- matstore.compositions key of the reduced map
    formula        VARCHAR NOT NULL,          -- pymatgen reduced_formula of the integer map
    elements       VARCHAR[] NOT NULL,        -- canonical (electronegativity) order
    counts         INTEGER[] NOT NULL,        -- smallest integer counts, same order
    n_elements     INTEGER NOT NULL,
    n_atoms        BIGINT NOT NULL            -- atoms in the reduced formula unit
);

CREATE TABLE materials (
    material_id    BIGINT NOT NULL,           -- hash of (source, external_id)
    ingest_id      INTEGER NOT NULL,
    source         VARCHAR NOT NULL,
    external_id    VARCHAR NOT NULL,          -- OQMD entry_id, mp-id, or file#row
    composition_id BIGINT NOT NULL,
    raw_formula    VARCHAR
);

CREATE TABLE properties (
    material_id    BIGINT NOT NULL,
    composition_id BIGINT NOT NULL,
    name           VARCHAR NOT NULL,          -- formation_energy_per_atom, band_gap, ...
    value          DOUBLE,
    unit           VARCHAR
);

CREATE TABLE features (
    composition_id BIGINT NOT NULL,
    featurizer     VARCHAR NOT NULL,
    version        VARCHAR NOT NULL,
    vector         FLOAT[] NOT NULL
);

CREATE TABLE validity (
    composition_id            BIGINT NOT NULL,
    checker_version           VARCHAR NOT NULL,
    charge_neutral            BOOLEAN,        -- some oxidation-state assignment sums to zero
    electronegativity_balanced BOOLEAN,       -- some charge-neutral assignment passes Pauling test
    smact_valid               BOOLEAN         -- smact.screening.smact_validity verdict
);

CREATE SEQUENCE model_id_seq START 1;
CREATE TABLE model_versions (
    model_id       INTEGER PRIMARY KEY DEFAULT nextval('model_id_seq'),
    name           VARCHAR NOT NULL,          -- preset or user name, e.g. gan-icsd
    version        INTEGER NOT NULL,          -- 1, 2, ... per name
    kind           VARCHAR NOT NULL,          -- wgan, autoencoder, cnn, elemnet, rf
    config         JSON,                      -- the module's explicit config
    hyperparams    JSON,
    training_query VARCHAR,
    training_rows  BIGINT,
    data_hash      VARCHAR,
    split          JSON,
    metrics        JSON,
    weights        BLOB,
    weights_sha256 VARCHAR,
    software       JSON,
    device         VARCHAR,
    seed           BIGINT,
    created_at     TIMESTAMP NOT NULL,
    UNIQUE (name, version)
);

CREATE SEQUENCE run_id_seq START 1;
CREATE TABLE runs (
    run_id         INTEGER PRIMARY KEY DEFAULT nextval('run_id_seq'),
    kind           VARCHAR NOT NULL,          -- generate, predict
    model_id       INTEGER,
    params         JSON,
    seed           BIGINT,
    device         VARCHAR,
    status         VARCHAR NOT NULL,          -- running, done, failed, interrupted
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP,
    n_requested    BIGINT,
    n_written      BIGINT DEFAULT 0,
    rows_per_s     DOUBLE,
    pid            INTEGER,
    host           VARCHAR
);

CREATE TABLE run_batches (                     -- one row per committed batch: resume point
    run_id       INTEGER NOT NULL,
    batch_no     INTEGER NOT NULL,
    n_samples    BIGINT NOT NULL,
    n_decodable  BIGINT NOT NULL,
    seconds      DOUBLE,
    committed_at TIMESTAMP NOT NULL
);

CREATE TABLE generated (                       -- raw samples, duplicates kept
    run_id         INTEGER NOT NULL,
    batch_no       INTEGER NOT NULL,
    sample_no      BIGINT NOT NULL,
    composition_id BIGINT NOT NULL
);

CREATE TABLE predictions (
    composition_id BIGINT NOT NULL,
    model_id       INTEGER NOT NULL,
    run_id         INTEGER,
    property       VARCHAR NOT NULL,
    value          DOUBLE
);
