ALTER TABLE sessions DROP COLUMN password_failures;
ALTER TABLE sessions DROP COLUMN sign_in_network;
