-- Deliveries answered with a retry: they do not count toward dead-lettering, which is for
-- deliveries that were never answered (their consumer died).
ALTER TABLE mailbox ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
