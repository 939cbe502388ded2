-- Every change of a job is a compare-and-set on `version`. A converting job is held by one
-- attempt: its own output blob and a lease. The owner's email is claimed (`sending`, with a
-- time) before it is sent and marked `sent` after; `published_at` dates the job's last message.
ALTER TABLE job ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN output_fid TEXT;
ALTER TABLE job ADD COLUMN lease_until INTEGER;
ALTER TABLE job ADD COLUMN notification TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE job ADD COLUMN notification_since INTEGER;
ALTER TABLE job ADD COLUMN published_at INTEGER NOT NULL DEFAULT 0;
-- Jobs finished before this version were mailed by the old rules (or given up on long ago):
-- none is mailed again.
UPDATE job SET notification = 'sent' WHERE state IN ('done', 'failed');
UPDATE job SET published_at = updated_at;
ALTER TABLE job DROP COLUMN notified;
-- The sweeper's question: which jobs' next message is overdue.
CREATE INDEX job_overdue ON job (published_at)
    WHERE state IN ('queued', 'converting') OR (state IN ('done', 'failed') AND notification IN ('pending', 'sending'));
