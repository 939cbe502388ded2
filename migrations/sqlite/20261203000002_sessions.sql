-- Sessions that end before their tokens expire. Added to the seed's `user` table, not changed:
-- a token carries its user's generation when issued, and is refused once it has moved on
-- (a password change, a role change, "log out everywhere").
ALTER TABLE user ADD COLUMN session_generation INTEGER NOT NULL DEFAULT 0;

-- One session ended by itself (`POST /logout`), kept until its token would have expired.
CREATE TABLE ended_session (
    session_id TEXT    PRIMARY KEY,
    email      TEXT    NOT NULL COLLATE NOCASE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX ended_session_by_email ON ended_session (email);
