-- Sessions that end before their tokens expire. Added to the seed's `user` table, not changed:
-- a token carries its user's generation when issued, and is refused once it has moved on
-- (a password change, a role change, "log out everywhere").
ALTER TABLE user ADD COLUMN session_generation BIGINT NOT NULL DEFAULT 0;

-- One session ended by itself (`POST /logout`), kept until its token would have expired.
CREATE TABLE ended_session (
    session_id VARCHAR(64)  NOT NULL PRIMARY KEY,
    email      VARCHAR(255) NOT NULL,
    expires_at BIGINT       NOT NULL,
    INDEX ended_session_by_email (email)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
