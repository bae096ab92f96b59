-- The durable job queue. Times are unix microseconds (0 = unset), so the
-- queue's SQL is the same text on SQLite and PostgreSQL (see internal/sqlite).
CREATE TABLE jobs (
  id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind            TEXT    NOT NULL CHECK (kind IN ('command','task','script','plan')),
  spec            TEXT    NOT NULL,          -- JSON, stored as given (callers encrypt secrets)
  spec_hash       TEXT    NOT NULL,
  targets         TEXT    NOT NULL,          -- JSON array of node names
  priority        INTEGER NOT NULL,
  run_at          BIGINT  NOT NULL,
  every_us        BIGINT  NOT NULL DEFAULT 0,
  continuous      INTEGER NOT NULL DEFAULT 0,
  max_retries     INTEGER NOT NULL DEFAULT 0,
  timeout_us      BIGINT  NOT NULL DEFAULT 0,
  on_lease_expiry TEXT    NOT NULL CHECK (on_lease_expiry IN ('retry','fail')),
  created_by      TEXT    NOT NULL DEFAULT '',
  created_at      BIGINT  NOT NULL,
  cancelled_at    BIGINT  NOT NULL DEFAULT 0
);

-- One node-run per job per target; repeats of continuous and recurring jobs
-- are new rows.
CREATE TABLE runs (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id            BIGINT  NOT NULL REFERENCES jobs(id),
  node              TEXT    NOT NULL,
  kind              TEXT    NOT NULL,
  spec_hash         TEXT    NOT NULL,
  priority          INTEGER NOT NULL,
  bump              BIGINT  NOT NULL DEFAULT 0,
  state             TEXT    NOT NULL CHECK (state IN ('scheduled','pending','running','succeeded','failed','cancelled','retrying')),
  attempt           INTEGER NOT NULL DEFAULT 0,
  completed_attempt INTEGER NOT NULL DEFAULT 0,
  max_retries       INTEGER NOT NULL,
  timeout_us        BIGINT  NOT NULL,
  on_lease_expiry   TEXT    NOT NULL,
  run_at            BIGINT  NOT NULL,
  created_at        BIGINT  NOT NULL,
  started_at        BIGINT  NOT NULL DEFAULT 0,
  finished_at       BIGINT  NOT NULL DEFAULT 0,
  lease_owner       TEXT    NOT NULL DEFAULT '',
  lease_expires_at  BIGINT  NOT NULL DEFAULT 0,
  exit_code         INTEGER NOT NULL DEFAULT 0,
  error             TEXT    NOT NULL DEFAULT '',
  result            TEXT    NOT NULL DEFAULT ''
);

-- THE invariant: at most one running run per node, whichever job it serves.
CREATE UNIQUE INDEX runs_one_running_per_node ON runs (node) WHERE state = 'running';
CREATE INDEX runs_ready_order ON runs (bump DESC, priority DESC, run_at, id) WHERE state = 'pending';
CREATE INDEX runs_waiting ON runs (state, run_at) WHERE state IN ('scheduled','pending','retrying');
CREATE INDEX runs_coalesce ON runs (node, kind, spec_hash) WHERE state IN ('scheduled','pending');
CREATE INDEX runs_lease ON runs (lease_expires_at) WHERE state = 'running';
CREATE INDEX runs_finished ON runs (finished_at) WHERE state IN ('succeeded','failed');
CREATE INDEX runs_job ON runs (job_id);

-- Which runs serve which job: its own, and the ones it was coalesced into.
CREATE TABLE requests (
  job_id BIGINT NOT NULL REFERENCES jobs(id),
  run_id BIGINT NOT NULL REFERENCES runs(id),
  PRIMARY KEY (job_id, run_id)
);
CREATE INDEX requests_run ON requests (run_id);
