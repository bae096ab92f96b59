-- A server's running runs, for Heartbeat and ReleaseRuns.
CREATE INDEX runs_owner ON runs (lease_owner) WHERE state = 'running';

-- runs is a queue table: every claim and completion leaves dead row
-- versions in its partial indexes, and its state mix changes in bursts.
-- Vacuum and analyze it far sooner than the defaults (20% and 10% of the
-- table) so that plans follow the queue.
ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
