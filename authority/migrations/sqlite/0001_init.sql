-- Users, sessions, projects, their records and the transaction log.
-- Ids are 16-byte UUIDs; record bodies and ops are the protocol's bincode encoding.

CREATE TABLE users (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- An argon2 PHC string; empty for users who joined an open authority and have no password.
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    -- blake3 of the token; the token itself is never stored.
    token_hash BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);

CREATE TABLE projects (
    id BLOB PRIMARY KEY,
    -- The seq of the last committed transaction.
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE records (
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    id BLOB NOT NULL,
    version INTEGER NOT NULL,
    -- The seq of the transaction that last changed the record, for catch-up deltas.
    seq INTEGER NOT NULL,
    -- NULL once deleted: a tombstone.
    body BLOB,
    PRIMARY KEY (project_id, id)
);

CREATE INDEX records_by_seq ON records (project_id, seq);

CREATE TABLE transactions (
    tx_id BLOB PRIMARY KEY,
    project_id BLOB NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    author BLOB NOT NULL,
    ops BLOB NOT NULL,
    -- The (record, version) pairs the commit produced, returned again on replay.
    versions BLOB NOT NULL,
    committed_at INTEGER NOT NULL,
    UNIQUE (project_id, seq)
);
