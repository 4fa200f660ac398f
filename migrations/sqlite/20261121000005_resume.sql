-- Rooms of sockets closed by a draining node (see the Postgres twin).
CREATE TABLE IF NOT EXISTS resume_tickets (
    sid TEXT PRIMARY KEY,
    login TEXT NOT NULL,
    rooms TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
