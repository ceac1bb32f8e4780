-- Which process serves each project when several serve from one database: a lease renewed
-- by its holder, whose epoch fences commits (a commit names the epoch it holds, and a former
-- holder's epoch no longer matches). Expiry is on the database's clock only.

CREATE TABLE project_leases (
    project_id BYTEA PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX project_leases_by_node ON project_leases (node_id);
