-- Users keep the seed's table and column names; `password` holds an argon2id PHC hash.
CREATE TABLE user (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password   TEXT    NOT NULL,
    is_admin   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE job (
    id            TEXT    PRIMARY KEY,
    owner         TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    video_fid     TEXT    NOT NULL,
    mp3_fid       TEXT,
    filename      TEXT    NOT NULL,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    media_seconds REAL,
    notified      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX job_by_owner ON job (owner, id);
CREATE INDEX job_by_state ON job (state);

-- The persistent mailbox: a message is claimable when visible_at <= now; a claim pushes
-- visible_at one lease ahead and stamps a token that ack, retry and release must present.
CREATE TABLE mailbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    queue      TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    visible_at INTEGER NOT NULL,
    consumer   TEXT,
    token      INTEGER
);
CREATE INDEX mailbox_claimable ON mailbox (queue, visible_at, seq);
