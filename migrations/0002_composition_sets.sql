-- Named lists of compositions: a model's training split (role train/holdout), a leave-out set,
-- or any list a user wants generated samples checked against (MatGAN Table 3.3 recovery).
CREATE TABLE composition_sets (
    set_name       VARCHAR NOT NULL,          -- e.g. 'gan-mp@1/train', 'leave-out'
    composition_id BIGINT NOT NULL,
    model_id       INTEGER,                   -- model whose split this is (NULL: a plain list)
    role           VARCHAR,                   -- train, holdout, val, test (NULL: a plain list)
    created_at     TIMESTAMP NOT NULL
);
