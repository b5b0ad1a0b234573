DROP TABLE votes;
DROP TABLE posts;
DROP INDEX users_created_at_id;
ALTER TABLE users DROP COLUMN deactivated_at;
