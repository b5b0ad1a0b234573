-- Each post keeps its vote count, changed in the same statement or transaction as the
-- vote itself, so that reading a page's counts is a read of the posts, not a count of
-- their votes.
ALTER TABLE posts ADD COLUMN vote_count BIGINT NOT NULL DEFAULT 0;
UPDATE posts SET vote_count = (SELECT COUNT(*) FROM votes WHERE votes.post_id = posts.id);
