DROP TABLE instances;
DROP INDEX posts_published_at;
ALTER TABLE posts DROP COLUMN published_at;
DROP TABLE throttle_failures;
DROP TABLE throttle_buckets;
