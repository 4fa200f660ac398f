-- Live nodes and their last heartbeat (see the Postgres twin).
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    heartbeat_at TEXT NOT NULL
);
