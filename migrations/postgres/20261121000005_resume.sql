-- Rooms of sockets closed by a draining node, keyed by the closed socket's id. The
-- client reconnects (to another node) with `resume: <old id>` and, when the login
-- matches, gets these rooms back; the ticket is used once and expires.
CREATE TABLE IF NOT EXISTS resume_tickets (
    sid varchar(64) PRIMARY KEY,
    login varchar(64) NOT NULL,
    rooms text NOT NULL,
    expires_ms bigint NOT NULL
);
