ALTER TABLE posts DROP COLUMN vote_count;
