-- Posts, votes, and deactivating accounts.

ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMPTZ;

-- Lists of users are walked newest first, by (created_at, id).
CREATE INDEX users_created_at_id ON users (created_at, id);

CREATE TABLE posts (
    id         UUID PRIMARY KEY,
    author_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    published  BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The public feed: published posts, newest first.
CREATE INDEX posts_published_created_at_id ON posts (published, created_at, id);
-- One author's posts, newest first (and the foreign key).
CREATE INDEX posts_author_created_at_id ON posts (author_id, created_at, id);

CREATE TABLE votes (
    post_id    UUID NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE INDEX votes_user_id ON votes (user_id);
