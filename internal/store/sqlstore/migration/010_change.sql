-- Change-driven continuous jobs (muster job submit --continuous
-- --fingerprint ... --on-change ... --facts-used ... --depends-on-result).
--
-- jobs gain the fingerprint spec ('' for none), the on-change action (its
-- job kind and prepared spec, '' for none), the facts the result depends
-- on (a JSON list, '' for none) and the job whose result changes bump
-- this one's runs (0 for none).
ALTER TABLE jobs ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN on_change_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN on_change_spec TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN facts_used TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN depends_on_result BIGINT NOT NULL DEFAULT 0;
-- The jobs that depend on a job's result, for a completion that changes it.
CREATE INDEX jobs_depends_on_result ON jobs (depends_on_result) WHERE depends_on_result > 0;
-- The jobs whose runs a fact change may bump.
CREATE INDEX jobs_facts_used ON jobs (id) WHERE facts_used <> '';

-- The last fingerprint of each job's result on each node, written in the
-- transaction that completes the run that produced it.
CREATE TABLE fingerprints (
  job_id     BIGINT NOT NULL REFERENCES jobs(id),
  node       TEXT   NOT NULL,
  run_id     BIGINT NOT NULL,
  value      TEXT   NOT NULL,
  changed_at BIGINT NOT NULL,
  changes    BIGINT NOT NULL DEFAULT 1,
  PRIMARY KEY (job_id, node)
);
