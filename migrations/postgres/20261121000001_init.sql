-- Session rows share their table with connect-pg-simple, so the columns, types and
-- index are exactly the ones that store creates. IF NOT EXISTS keeps a table an
-- Express application made first.
CREATE TABLE IF NOT EXISTS express_sessions (
    sid varchar NOT NULL COLLATE "default" PRIMARY KEY,
    sess json NOT NULL,
    expire timestamp(6) NOT NULL
);
CREATE INDEX IF NOT EXISTS "IDX_express_sessions_expire" ON express_sessions (expire);

CREATE TABLE IF NOT EXISTS users (
    login varchar(64) PRIMARY KEY,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
