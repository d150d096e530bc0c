-- Active learning (issue 16): campaigns that fit a Gaussian process on autoencoder latents,
-- propose compositions round by round and record where every label came from (matstore.al).

-- An autoencoder's latent vector of a composition. Not a featurization (features): a featurizer
-- is a fixed function of the composition, a latent depends on one model version's weights.
CREATE TABLE latents (
    composition_id BIGINT NOT NULL,
    model_id       INTEGER NOT NULL,          -- the autoencoder version that encoded it
    vector         FLOAT[] NOT NULL,
    PRIMARY KEY (composition_id, model_id)
);

CREATE TABLE al_campaigns (
    campaign_id     INTEGER PRIMARY KEY,
    name            VARCHAR,
    property        VARCHAR NOT NULL,         -- band_gap, ...
    target          JSON NOT NULL,            -- {"goal": "max"} | {"goal": "range", "low": a, "high": b}
    acquisition     VARCHAR NOT NULL,         -- ucb, ei, thompson
    kappa           DOUBLE NOT NULL,          -- UCB: mean + kappa * std (botorch beta = kappa^2)
    batch_size      INTEGER NOT NULL,         -- proposals per round
    oracle          VARCHAR NOT NULL,         -- model:NAME@N | external
    oracle_model_id INTEGER,                  -- the oracle's model version (model oracles)
    autoencoder_id  INTEGER NOT NULL,         -- model_versions.model_id of the autoencoder
    base_selection  VARCHAR NOT NULL,         -- SQL returning composition_id: the labelled start
    base_source     VARCHAR NOT NULL,         -- the one source of the base labels
    base_rows       BIGINT NOT NULL,          -- compositions in the base set (composition_sets)
    params          JSON,                     -- everything else (candidates, decode tolerance, ...)
    seed            BIGINT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);

-- A round: the GP fit and its batch of proposals, written in one transaction before any label.
CREATE TABLE al_rounds (
    campaign_id  INTEGER NOT NULL,
    round_no     INTEGER NOT NULL,
    n_train      BIGINT NOT NULL,             -- labelled points the GP was fit on
    train_hash   VARCHAR NOT NULL,            -- sha256 of their (composition_id, value, source)
    gp           JSON,                        -- the fitted hyperparameters
    n_proposed   INTEGER NOT NULL,
    n_decodable  INTEGER NOT NULL,
    seconds      DOUBLE,
    proposed_at  TIMESTAMP NOT NULL,
    closed_at    TIMESTAMP,                   -- NULL while labels are awaited
    PRIMARY KEY (campaign_id, round_no)
);

CREATE TABLE al_proposals (
    proposal_id    BIGINT PRIMARY KEY,
    campaign_id    INTEGER NOT NULL,
    round_no       INTEGER NOT NULL,
    rank           INTEGER NOT NULL,          -- order of selection within the batch
    latent         FLOAT[] NOT NULL,          -- the proposed point of the latent space
    composition_id BIGINT,                    -- what it decodes to; NULL: it does not decode
    formula        VARCHAR,
    acquisition    DOUBLE,                    -- the acquisition value when it was picked
    mean           DOUBLE,                    -- GP posterior of the objective at the point
    std            DOUBLE
);

-- One label per proposal; the value is also a properties row of its own source (material_id).
CREATE TABLE al_labels (
    proposal_id    BIGINT PRIMARY KEY,
    campaign_id    INTEGER NOT NULL,
    composition_id BIGINT NOT NULL,
    value          DOUBLE NOT NULL,
    source         VARCHAR NOT NULL,          -- the label's source (sources.name)
    model_id       INTEGER,                   -- the oracle model version; NULL: external
    material_id    BIGINT NOT NULL,
    labelled_at    TIMESTAMP NOT NULL
);
