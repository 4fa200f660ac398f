-- The to-do example of seed 002.
CREATE TABLE IF NOT EXISTS todos (
    id bigserial PRIMARY KEY,
    title varchar(500) NOT NULL,
    author varchar(64) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
