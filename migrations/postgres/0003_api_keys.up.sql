-- API keys: long-lived, scoped credentials acting for their owner. Only a hash of each
-- secret is kept; the unique index on it makes every lookup one indexed read.

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL UNIQUE,
    -- A comma-separated subset of read, write, admin.
    scopes       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- One user's keys, newest first (and the foreign key).
CREATE INDEX api_keys_user_id_created_at ON api_keys (user_id, created_at);
