-- A client's copy of one project: the confirmed records, the seq they are at, and the edits
-- made here that the authority has not confirmed yet, in the order they were made.

CREATE TABLE replica (
    -- One row: which project this file holds and the seq of its confirmed state.
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    project BLOB NOT NULL,
    seq INTEGER NOT NULL
);

CREATE TABLE records (
    id BLOB PRIMARY KEY,
    version INTEGER NOT NULL,
    -- The record in the wire's encoding; NULL once deleted (a tombstone).
    record BLOB
) WITHOUT ROWID;

CREATE TABLE pending (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id BLOB NOT NULL UNIQUE,
    tx BLOB NOT NULL
);
