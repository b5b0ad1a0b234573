-- Several instances share only PostgreSQL: on SQLite, brute-force protection counts in
-- the one process's memory and events stay in it.

-- When each post was last published (edits do not count), as on PostgreSQL, where it lets
-- an instance catch up on the posts published while its event listener was cut off.
ALTER TABLE posts ADD COLUMN published_at TEXT;
UPDATE posts SET published_at = updated_at WHERE published;
CREATE INDEX posts_published_at ON posts (published_at) WHERE published_at IS NOT NULL;
