-- The embedded twin of the Postgres schema. `sess` holds JSON text and `expire` a UTC
-- timestamp as 'YYYY-MM-DD HH:MM:SS', which sorts and compares as text.
CREATE TABLE IF NOT EXISTS express_sessions (
    sid TEXT NOT NULL PRIMARY KEY,
    sess TEXT NOT NULL CHECK (json_valid(sess)),
    expire TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_express_sessions_expire ON express_sessions (expire);

CREATE TABLE IF NOT EXISTS users (
    login TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
