-- Recovery credentials. A socket's session row carries the hash of its credential's
-- secret; when the row goes (disconnect, drain, the sweep of a dead node) its rooms and
-- that hash stay behind as a ticket for `rooms.resume_ttl`. `recovery_used` makes each
-- credential usable once, whichever of the two it was checked against.
ALTER TABLE resume_tickets ADD COLUMN IF NOT EXISTS secret_hash text;
CREATE TABLE IF NOT EXISTS recovery_used (
    sid varchar(64) PRIMARY KEY,
    expires_ms bigint NOT NULL
);
