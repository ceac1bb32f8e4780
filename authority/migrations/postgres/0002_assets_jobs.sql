-- Audio files stored once by content, who stores them (for quotas), and background jobs.

CREATE TABLE blobs (
    -- blake3 of the file as uploaded: its identity, whatever it is stored as.
    hash BYTEA PRIMARY KEY,
    size BIGINT NOT NULL,
    -- The protocol's codec of the upload, and what the probe found.
    codec TEXT NOT NULL,
    sample_rate BIGINT NOT NULL,
    channels BIGINT NOT NULL,
    frames BIGINT NOT NULL,
    -- What the file on disk is: 'original', or 'flac' once a lossless upload is transcoded.
    stored TEXT NOT NULL,
    stored_size BIGINT NOT NULL,
    -- blake3 of the file on disk, which downloads are checked against.
    stored_hash BYTEA NOT NULL,
    peaks_ready BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE user_blobs (
    user_id BYTEA NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash BYTEA NOT NULL REFERENCES blobs (hash),
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE jobs (
    id BYTEA PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id BYTEA NOT NULL,
    -- The job's input in the wire encoding.
    payload BYTEA NOT NULL,
    -- 'queued', 'running', 'done' or 'failed'.
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    -- Milliseconds since the epoch: when a queued job may run, and when a running job's
    -- lease ends (after which another worker may take it).
    run_after BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    worker TEXT,
    error TEXT,
    files BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX jobs_ready ON jobs (state, run_after);
