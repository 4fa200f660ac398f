-- Lobby sessions (seed 001) live in the database so that a host and its clients may
-- sit on different nodes. A socket is in at most one lobby session (primary key).
CREATE TABLE IF NOT EXISTS lobby_sessions (
    session_key varchar(16) PRIMARY KEY,
    kind varchar(32) NOT NULL,
    ph_users integer NOT NULL,
    started boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS lobby_members (
    socket_id varchar(64) PRIMARY KEY,
    session_key varchar(16) NOT NULL REFERENCES lobby_sessions (session_key) ON DELETE CASCADE,
    name varchar(64) NOT NULL,
    role varchar(8) NOT NULL CHECK (role IN ('HOST', 'CLIENT')),
    node varchar(64) NOT NULL,
    joined_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_lobby_members_session ON lobby_members (session_key);
CREATE UNIQUE INDEX IF NOT EXISTS idx_lobby_one_host ON lobby_members (session_key) WHERE role = 'HOST';
