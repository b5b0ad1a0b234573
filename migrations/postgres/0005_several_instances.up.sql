-- Brute-force protection shared by every instance on this database.
--
-- Buckets (credential attempts per address, writes per account) hold a theoretical
-- arrival time in microseconds of the database's clock (GCRA): losing them in a crash
-- only hands out one burst again, so the table is UNLOGGED and costs no WAL. Failure
-- counts and account pauses must survive a crash, so theirs is logged.

CREATE UNLOGGED TABLE throttle_buckets (
    key TEXT PRIMARY KEY,
    tat_us BIGINT NOT NULL,
    -- What the last take had to wait, in microseconds (0: it was granted).
    wait_us BIGINT NOT NULL
);

CREATE TABLE throttle_failures (
    key TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_us BIGINT NOT NULL,
    -- When the failure before the last one was, to restore it should the last be taken back.
    previous_us BIGINT,
    -- Where decay has been counted up to, and its period (0: the count never decays).
    decayed_to_us BIGINT NOT NULL,
    decay_us BIGINT NOT NULL
);

CREATE INDEX throttle_buckets_tat ON throttle_buckets (tat_us);
CREATE INDEX throttle_failures_last ON throttle_failures (last_us);

-- When each post was last published, so that an instance whose event listener was cut off
-- can catch up on the posts published meanwhile (edits do not count as publishing).
ALTER TABLE posts ADD COLUMN published_at TIMESTAMPTZ;
UPDATE posts SET published_at = updated_at WHERE published;
CREATE INDEX posts_published_at ON posts (published_at) WHERE published_at IS NOT NULL;

-- The instances serving from this database: which keys they sign and verify tokens with,
-- so that one started with a key the others do not share refuses to start, and how far
-- each one's clock is from the database's. Rows not seen for a day are deleted.
CREATE TABLE instances (
    id UUID PRIMARY KEY,
    signing_key_id TEXT NOT NULL,
    previous_key_id TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    clock_offset_ms BIGINT NOT NULL DEFAULT 0
);
