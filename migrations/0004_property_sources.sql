-- Properties true to their source: what each source's values are (DFT and its level of theory,
-- or experiment), and the rows curation dropped, kept with the rule that dropped them.

-- One row per source name used in materials.source / ingests.source. kind says what its property
-- values are: 'dft' (method = the functional, e.g. PBE), 'experiment', or 'unknown' (a file
-- ingested without --kind). Views never combine values of different sources (sql/composition_*).
CREATE TABLE sources (
    name        VARCHAR PRIMARY KEY,          -- oqmd, mp, icsd, builtin, csv, or a --source-name
    kind        VARCHAR NOT NULL,             -- dft, experiment, unknown
    method      VARCHAR,                      -- level of theory where known (PBE, ...)
    description VARCHAR
);
INSERT INTO sources VALUES
    ('oqmd', 'dft', 'PBE', 'Open Quantum Materials Database: DFT (GGA-PBE, +U where applied)'),
    ('mp', 'dft', 'PBE', 'Materials Project: DFT (GGA-PBE, +U where applied)'),
    ('builtin', 'experiment', NULL,
     'pymatgen exp_compounds experimental formation enthalpies; matminer MP formulas (no properties)'),
    ('icsd', 'experiment', NULL, 'ICSD: experimentally determined structures (no properties as a rule)'),
    ('csv', 'unknown', NULL, 'a table file ingested without --source-name / --kind');
-- names already in an upgraded store that are none of the above (none before this migration,
-- but a hand-filled store may have them): their kind is not known
INSERT INTO sources
SELECT DISTINCT source, 'unknown', NULL, NULL
FROM (SELECT source FROM ingests UNION SELECT source FROM materials)
WHERE source NOT IN (SELECT name FROM sources);

-- Rows removed by a curation rule (matstore.curation), like rejects: the row and why.
-- Counts per (ingest_id, rule) equal ingests.curation for ingests run at this schema or later.
CREATE TABLE curated (
    ingest_id  INTEGER NOT NULL,
    row_ref    VARCHAR,                       -- the row's external id
    raw        VARCHAR,                       -- the row as read
    rule       VARCHAR NOT NULL               -- exclude_elements, matgan_elements, ... (RULES)
);
