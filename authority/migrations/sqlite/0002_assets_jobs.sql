-- Audio files stored once by content, who stores them (for quotas), and background jobs.

CREATE TABLE blobs (
    -- blake3 of the file as uploaded: its identity, whatever it is stored as.
    hash BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    -- The protocol's codec of the upload, and what the probe found.
    codec TEXT NOT NULL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    -- What the file on disk is: 'original', or 'flac' once a lossless upload is transcoded.
    stored TEXT NOT NULL,
    stored_size INTEGER NOT NULL,
    -- blake3 of the file on disk, which downloads are checked against.
    stored_hash BLOB NOT NULL,
    peaks_ready INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE user_blobs (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash BLOB NOT NULL REFERENCES blobs (hash),
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE jobs (
    id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id BLOB NOT NULL,
    -- The job's input in the wire encoding.
    payload BLOB NOT NULL,
    -- 'queued', 'running', 'done' or 'failed'.
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    -- Milliseconds since the epoch: when a queued job may run, and when a running job's
    -- lease ends (after which another worker may take it).
    run_after INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    worker TEXT,
    error TEXT,
    files INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX jobs_ready ON jobs (state, run_after);
