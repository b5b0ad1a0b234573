ALTER TABLE sessions DROP COLUMN password_checks_at;
ALTER TABLE sessions DROP COLUMN password_checks;
ALTER TABLE sessions DROP COLUMN password_failures;
ALTER TABLE sessions DROP COLUMN sign_in_network;
