-- What a session remembers for account protection: the network it signed in from (so that
-- a client which signed in from there recently passes an account's pause for failed
-- sign-ins), and how many wrong current passwords it has sent (it ends after a few).

ALTER TABLE sessions ADD COLUMN sign_in_network TEXT;
ALTER TABLE sessions ADD COLUMN password_failures INTEGER NOT NULL DEFAULT 0;
