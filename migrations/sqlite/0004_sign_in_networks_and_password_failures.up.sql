-- What a session remembers for account protection: the network it signed in from (so that
-- a client which signed in from there recently passes an account's pause for failed
-- sign-ins), how many wrong current passwords it has sent (it ends after a few), and how
-- many of its password checks are being made now, and since when (checks are taken before
-- they are made, so that checks sent at once cannot make more guesses together).

ALTER TABLE sessions ADD COLUMN sign_in_network TEXT;
ALTER TABLE sessions ADD COLUMN password_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN password_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN password_checks_at TEXT;
