-- API keys: long-lived, scoped credentials acting for their owner. Only a hash of each
-- secret is kept; the unique index on it makes every lookup one indexed read.

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  BLOB NOT NULL UNIQUE,
    -- A comma-separated subset of read, write, admin.
    scopes       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT
);

-- One user's keys, newest first (and the foreign key).
CREATE INDEX api_keys_user_id_created_at ON api_keys (user_id, created_at);
