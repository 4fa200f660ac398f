-- The embedded twin of the Postgres lobby tables.
CREATE TABLE IF NOT EXISTS lobby_sessions (
    session_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ph_users INTEGER NOT NULL,
    started INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

CREATE TABLE IF NOT EXISTS lobby_members (
    socket_id TEXT PRIMARY KEY,
    session_key TEXT NOT NULL REFERENCES lobby_sessions (session_key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('HOST', 'CLIENT')),
    node TEXT NOT NULL,
    joined_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS idx_lobby_members_session ON lobby_members (session_key);
CREATE UNIQUE INDEX IF NOT EXISTS idx_lobby_one_host ON lobby_members (session_key) WHERE role = 'HOST';
