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

COMMENT ON TABLE latents IS 'An autoencoder version''s latent vector of a composition (active learning works in this space)';
COMMENT ON COLUMN latents.composition_id IS 'The encoded composition (compositions.composition_id)';
COMMENT ON COLUMN latents.model_id IS 'The autoencoder version that encoded it (model_versions.model_id)';
COMMENT ON COLUMN latents.vector IS 'Its latent vector (the encoder''s output, latent_dim floats)';
COMMENT ON TABLE al_campaigns IS 'Active-learning campaigns: a Gaussian process on autoencoder latents proposes compositions, an oracle labels them (matstore al)';
COMMENT ON COLUMN al_campaigns.campaign_id IS 'Campaign id (remapped when stores merge)';
COMMENT ON COLUMN al_campaigns.name IS 'A name the user gave the campaign, or NULL';
COMMENT ON COLUMN al_campaigns.property IS 'The property the campaign labels and optimises (band_gap, ...)';
COMMENT ON COLUMN al_campaigns.target IS 'The goal as JSON: {"goal": "max"} or {"goal": "range", "low": a, "high": b} (eV for band_gap)';
COMMENT ON COLUMN al_campaigns.acquisition IS 'Acquisition function: ucb, ei, thompson or random';
COMMENT ON COLUMN al_campaigns.kappa IS 'UCB exploration weight: mean + kappa * std (botorch beta = kappa^2); seed 001 uses 10';
COMMENT ON COLUMN al_campaigns.batch_size IS 'Proposals per round';
COMMENT ON COLUMN al_campaigns.oracle IS 'Who labels: model:NAME@N (a registered predictor) or external (a file the user ingests with al label)';
COMMENT ON COLUMN al_campaigns.oracle_model_id IS 'The oracle''s model version (model oracles; NULL: external)';
COMMENT ON COLUMN al_campaigns.autoencoder_id IS 'The autoencoder version whose latent space is searched (model_versions.model_id)';
COMMENT ON COLUMN al_campaigns.base_selection IS 'SQL returning composition_id: the labelled rows the campaign starts from';
COMMENT ON COLUMN al_campaigns.base_source IS 'The one source whose values label the base rows (sources.name)';
COMMENT ON COLUMN al_campaigns.base_rows IS 'Compositions in the base set (stored in composition_sets)';
COMMENT ON COLUMN al_campaigns.params IS 'Other settings as JSON (candidate counts, decode tolerance, ...)';
COMMENT ON COLUMN al_campaigns.seed IS 'Seed of the base draw, the candidates and the GP fits';
COMMENT ON COLUMN al_campaigns.created_at IS 'When the campaign was started (UTC)';
COMMENT ON TABLE al_rounds IS 'One round of a campaign: the GP fit and its batch of proposals, written in one transaction before any label';
COMMENT ON COLUMN al_rounds.campaign_id IS 'The campaign (al_campaigns.campaign_id)';
COMMENT ON COLUMN al_rounds.round_no IS 'Round number within the campaign, from 1';
COMMENT ON COLUMN al_rounds.n_train IS 'Labelled points the GP was fit on';
COMMENT ON COLUMN al_rounds.train_hash IS 'sha256 of the GP''s training set (composition_id, value, source): which labels it used';
COMMENT ON COLUMN al_rounds.gp IS 'The fitted GP hyperparameters as JSON (lengthscales, outputscale, noise, input box, objective scaling)';
COMMENT ON COLUMN al_rounds.n_proposed IS 'Proposals made this round';
COMMENT ON COLUMN al_rounds.n_decodable IS 'Proposals that decode to a composition';
COMMENT ON COLUMN al_rounds.seconds IS 'Seconds the fit and the proposals took';
COMMENT ON COLUMN al_rounds.proposed_at IS 'When the proposals were written (UTC)';
COMMENT ON COLUMN al_rounds.closed_at IS 'When every decodable proposal had its label (UTC); NULL while labels are awaited';
COMMENT ON TABLE al_proposals IS 'Points of the latent space a round proposed, what they decode to and the acquisition that picked them';
COMMENT ON COLUMN al_proposals.proposal_id IS 'Proposal id (remapped when stores merge)';
COMMENT ON COLUMN al_proposals.campaign_id IS 'The campaign (al_campaigns.campaign_id)';
COMMENT ON COLUMN al_proposals.round_no IS 'The round that proposed it';
COMMENT ON COLUMN al_proposals.rank IS 'Order of selection within the batch, from 1';
COMMENT ON COLUMN al_proposals.latent IS 'The proposed point of the latent space';
COMMENT ON COLUMN al_proposals.composition_id IS 'The composition it decodes to; NULL: it does not decode';
COMMENT ON COLUMN al_proposals.formula IS 'That composition''s formula; NULL: it does not decode';
COMMENT ON COLUMN al_proposals.acquisition IS 'The acquisition value when it was picked';
COMMENT ON COLUMN al_proposals.mean IS 'GP posterior mean of the objective at the point';
COMMENT ON COLUMN al_proposals.std IS 'GP posterior standard deviation of the objective at the point';
COMMENT ON TABLE al_labels IS 'One label per decodable proposal; the value is also a properties row of the label''s own source';
COMMENT ON COLUMN al_labels.proposal_id IS 'The labelled proposal (al_proposals.proposal_id)';
COMMENT ON COLUMN al_labels.campaign_id IS 'The campaign (al_campaigns.campaign_id)';
COMMENT ON COLUMN al_labels.composition_id IS 'The composition labelled';
COMMENT ON COLUMN al_labels.value IS 'The label (the campaign property''s unit: eV for band_gap)';
COMMENT ON COLUMN al_labels.source IS 'Where the label came from (sources.name: a model oracle''s al<ID>-oracle of kind model, or the external source the user named)';
COMMENT ON COLUMN al_labels.model_id IS 'The oracle model version; NULL: an external label';
COMMENT ON COLUMN al_labels.material_id IS 'The materials row that carries the label as a property';
COMMENT ON COLUMN al_labels.labelled_at IS 'When the label was stored (UTC)';
