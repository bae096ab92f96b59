-- A server's running runs, for Heartbeat and ReleaseRuns.
CREATE INDEX runs_owner ON runs (lease_owner) WHERE state = 'running';
