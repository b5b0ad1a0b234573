-- Accounts, sessions and server settings.
-- Ids are UUIDs (16-byte blobs) and times RFC 3339 UTC text, both produced by the server.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    -- Lower-cased forms, computed by the server, make uniqueness case-insensitive
    -- with the same rules on every engine.
    username_key  TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    email_key     TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    id                  BLOB PRIMARY KEY NOT NULL,
    user_id             BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the live refresh token and of the one it replaced.
    token_hash          BLOB NOT NULL,
    previous_token_hash BLOB,
    rotated_at          TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    last_used_at        TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    absolute_expires_at TEXT NOT NULL,
    revoked_at          TEXT,
    revoked_reason      TEXT,
    user_agent          TEXT
);

CREATE INDEX sessions_user_id ON sessions (user_id);
