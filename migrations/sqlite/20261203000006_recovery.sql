-- Recovery credentials (see the Postgres twin).
ALTER TABLE resume_tickets ADD COLUMN secret_hash TEXT;
CREATE TABLE IF NOT EXISTS recovery_used (
    sid TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
