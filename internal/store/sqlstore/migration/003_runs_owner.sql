-- A server's running runs, for Heartbeat and ReleaseRuns.
CREATE INDEX runs_owner ON runs (lease_owner) WHERE state = 'running';
--postgres:
--postgres: -- runs is a queue table: every claim and completion leaves dead row
--postgres: -- versions in its partial indexes, and its state mix changes in bursts.
--postgres: -- Vacuum and analyze it far sooner than the defaults (20% and 10% of the
--postgres: -- table) so that plans follow the queue.
--postgres: ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
