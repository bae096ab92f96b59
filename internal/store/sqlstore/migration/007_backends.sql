-- Pull runs' backends, counted across every server on the database.
--
-- A pull run is recorded with the backend it runs on (empty for push
-- runs), so that an agent's claim (ClaimNodeRun) counts the runs running
-- on its backend, whichever server handed them out: a backend's
-- max_running holds across servers. The claim runs under the queue lock,
-- so two servers never both see the last free place.
ALTER TABLE runs ADD COLUMN backend TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_backend_running ON runs (backend) WHERE state = 'running' AND backend <> '';

-- A backend's start-rate token bucket (runs per second), shared by the
-- servers: tokens left as of refilled_at (unix microseconds).
CREATE TABLE pull_backends (
  name        TEXT   NOT NULL PRIMARY KEY,
  tokens      DOUBLE PRECISION NOT NULL,
  refilled_at BIGINT NOT NULL
);
