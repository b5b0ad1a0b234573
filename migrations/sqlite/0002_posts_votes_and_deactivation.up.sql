-- Posts, votes, and deactivating accounts.

ALTER TABLE users ADD COLUMN deactivated_at TEXT;

-- Lists of users are walked newest first, by (created_at, id).
CREATE INDEX users_created_at_id ON users (created_at, id);

CREATE TABLE posts (
    id         BLOB PRIMARY KEY NOT NULL,
    author_id  BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    published  INTEGER NOT NULL CHECK (published IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The public feed: published posts, newest first.
CREATE INDEX posts_published_created_at_id ON posts (published, created_at, id);
-- One author's posts, newest first (and the foreign key).
CREATE INDEX posts_author_created_at_id ON posts (author_id, created_at, id);

CREATE TABLE votes (
    post_id    BLOB NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE INDEX votes_user_id ON votes (user_id);
