-- Why a queued job waits to be retried without its attempts counting, since when, and when it
-- is tried next (all NULL when it is not retrying).
ALTER TABLE job ADD COLUMN retry_reason TEXT;
ALTER TABLE job ADD COLUMN retry_since INTEGER;
ALTER TABLE job ADD COLUMN retry_next_at INTEGER;
