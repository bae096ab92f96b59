-- A job that must exist at most once, whoever submits it (two servers'
-- deployment annealers queueing the same hook): its once_key is unique
-- among jobs, and a submit with a key already held stores nothing and
-- returns the job that holds it (checked under the queue lock; the index
-- is the last word).
ALTER TABLE jobs ADD COLUMN once_key TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX jobs_once_key ON jobs (once_key) WHERE once_key <> '';
