-- Users, sessions, projects, their records and the transaction log.
-- Ids are 16-byte UUIDs; record bodies and ops are the protocol's bincode encoding.

CREATE TABLE users (
    id BYTEA PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- An argon2 PHC string; empty for users who joined an open authority and have no password.
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    -- blake3 of the token; the token itself is never stored.
    token_hash BYTEA PRIMARY KEY,
    user_id BYTEA NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);

CREATE TABLE projects (
    id BYTEA PRIMARY KEY,
    -- The seq of the last committed transaction.
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE records (
    project_id BYTEA NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    id BYTEA NOT NULL,
    version BIGINT NOT NULL,
    -- The seq of the transaction that last changed the record, for catch-up deltas.
    seq BIGINT NOT NULL,
    -- NULL once deleted: a tombstone.
    body BYTEA,
    PRIMARY KEY (project_id, id)
);

CREATE INDEX records_by_seq ON records (project_id, seq);

CREATE TABLE transactions (
    tx_id BYTEA PRIMARY KEY,
    project_id BYTEA NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    author BYTEA NOT NULL,
    ops BYTEA NOT NULL,
    -- The (record, version) pairs the commit produced, returned again on replay.
    versions BYTEA NOT NULL,
    committed_at BIGINT NOT NULL,
    UNIQUE (project_id, seq)
);
