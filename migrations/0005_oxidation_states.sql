-- Validity per oxidation-state set (matstore.validity.OXIDATION_SETS) and one oxidation-state
-- assignment per valid composition.
--
-- oxidation_states: one state per element of compositions.elements (same order), the most
-- probable charge-neutral assignment that passes the Pauling test (matstore/validity.py says how
-- "most probable" is scored); NULL where electronegativity_balanced is not TRUE, and on rows
-- written before this migration.
ALTER TABLE validity ADD COLUMN oxidation_states INTEGER[];

-- The checker version matstore last wrote for each set in this store, and which set the views
-- call valid (is_default: the set matstore validates by default, as of its last write). The
-- views read the checker from here instead of comparing version strings. Local bookkeeping:
-- `matstore merge` does not copy it.
CREATE TABLE validity_checkers (
    oxidation_set   VARCHAR PRIMARY KEY,
    checker_version VARCHAR NOT NULL,
    is_default      BOOLEAN NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

-- Rows of older stores came from one checker kind (smact_validity's default set, 'icsd24c3'
-- here); the one of the newest smact version (compared as numbers: 3.10 > 3.9) stays what the
-- views show until the default set is validated again.
INSERT INTO validity_checkers
SELECT 'icsd24c3',
       arg_max(checker_version, list_transform(
           string_split(regexp_extract(checker_version, 'smact([0-9.]+)', 1), '.'),
           lambda x: TRY_CAST(x AS INTEGER))),
       TRUE, now()
FROM validity
HAVING count(*) > 0;
