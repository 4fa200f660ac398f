-- Live nodes and their last heartbeat. A node whose heartbeat is older than the
-- configured timeout is dead: another node deletes this row, and with it the dead
-- node's session rows and lobby memberships.
CREATE TABLE IF NOT EXISTS nodes (
    id varchar(64) PRIMARY KEY,
    heartbeat_at timestamp(6) NOT NULL
);
