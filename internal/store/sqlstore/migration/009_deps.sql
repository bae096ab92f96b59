-- Job dependencies (muster job submit --after ID[,ID] [--after-each]).
--
-- job_deps lists the jobs each job runs after. A dependency always names
-- an older job (the CHECK): dependencies are fixed when a job is
-- submitted and may only name jobs that already exist, so they can never
-- form a cycle. per_node = 1 makes it per node: the dependent's run on node X
-- waits only for dep_job_id's runs on X.
CREATE TABLE job_deps (
  job_id     BIGINT  NOT NULL REFERENCES jobs(id),
  dep_job_id BIGINT  NOT NULL REFERENCES jobs(id),
  per_node   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, dep_job_id),
  CHECK (dep_job_id < job_id)
);
-- The jobs that run after a job, for a completion that ends its run.
CREATE INDEX job_deps_dep ON job_deps (dep_job_id);

-- Runs gain two states: 'waiting' (for dependencies) and 'blocked' (a
-- dependency failed or was cancelled; error says which). Neither is ever
-- claimed: both claims read pending runs only, so dependencies cost them
-- nothing. The transaction that ends a run with has_dependents set (some
-- job runs after a job the run serves) settles the waiting and blocked
-- runs that depend on it.
--sqlite: -- SQLite cannot change a CHECK constraint in place, so runs is rebuilt
--sqlite: -- with its indexes (the store runs migrations with foreign keys off and
--sqlite: -- checks them before committing; requests and run_output keep referring
--sqlite: -- to "runs").
--sqlite: CREATE TABLE runs_009 (
--sqlite:   id                  INTEGER PRIMARY KEY,
--sqlite:   job_id              BIGINT  NOT NULL REFERENCES jobs(id),
--sqlite:   node                TEXT    NOT NULL,
--sqlite:   kind                TEXT    NOT NULL,
--sqlite:   spec_hash           TEXT    NOT NULL,
--sqlite:   priority            INTEGER NOT NULL,
--sqlite:   bump                BIGINT  NOT NULL DEFAULT 0,
--sqlite:   state               TEXT    NOT NULL CHECK (state IN ('scheduled','pending','running','succeeded','failed','cancelled','retrying','waiting','blocked')),
--sqlite:   attempt             INTEGER NOT NULL DEFAULT 0,
--sqlite:   completed_attempt   INTEGER NOT NULL DEFAULT 0,
--sqlite:   max_retries         INTEGER NOT NULL,
--sqlite:   timeout_us          BIGINT  NOT NULL,
--sqlite:   on_lease_expiry     TEXT    NOT NULL,
--sqlite:   run_at              BIGINT  NOT NULL,
--sqlite:   created_at          BIGINT  NOT NULL,
--sqlite:   started_at          BIGINT  NOT NULL DEFAULT 0,
--sqlite:   finished_at         BIGINT  NOT NULL DEFAULT 0,
--sqlite:   lease_owner         TEXT    NOT NULL DEFAULT '',
--sqlite:   lease_expires_at    BIGINT  NOT NULL DEFAULT 0,
--sqlite:   exit_code           INTEGER NOT NULL DEFAULT 0,
--sqlite:   error               TEXT    NOT NULL DEFAULT '',
--sqlite:   result              TEXT    NOT NULL DEFAULT '',
--sqlite:   cancel_requested_at BIGINT  NOT NULL DEFAULT 0,
--sqlite:   has_output          INTEGER NOT NULL DEFAULT 0,
--sqlite:   backend             TEXT    NOT NULL DEFAULT '',
--sqlite:   has_dependents      INTEGER NOT NULL DEFAULT 0
--sqlite: );
--sqlite: INSERT INTO runs_009 (id, job_id, node, kind, spec_hash, priority, bump, state, attempt, completed_attempt,
--sqlite:   max_retries, timeout_us, on_lease_expiry, run_at, created_at, started_at, finished_at, lease_owner,
--sqlite:   lease_expires_at, exit_code, error, result, cancel_requested_at, has_output, backend)
--sqlite:   SELECT id, job_id, node, kind, spec_hash, priority, bump, state, attempt, completed_attempt,
--sqlite:   max_retries, timeout_us, on_lease_expiry, run_at, created_at, started_at, finished_at, lease_owner,
--sqlite:   lease_expires_at, exit_code, error, result, cancel_requested_at, has_output, backend FROM runs;
--sqlite: DROP TABLE runs;
--sqlite: ALTER TABLE runs_009 RENAME TO runs;
--sqlite: CREATE UNIQUE INDEX runs_one_running_per_node ON runs (node) WHERE state = 'running';
--sqlite: CREATE INDEX runs_waiting ON runs (state, run_at) WHERE state IN ('scheduled','pending','retrying');
--sqlite: CREATE INDEX runs_coalesce ON runs (node, kind, spec_hash) WHERE state IN ('scheduled','pending');
--sqlite: CREATE INDEX runs_lease ON runs (lease_expires_at) WHERE state = 'running';
--sqlite: CREATE INDEX runs_finished ON runs (finished_at) WHERE state IN ('succeeded','failed');
--sqlite: CREATE INDEX runs_job ON runs (job_id);
--sqlite: CREATE INDEX runs_owner ON runs (lease_owner) WHERE state = 'running';
--sqlite: CREATE INDEX runs_cancel_requested ON runs (lease_owner) WHERE state = 'running' AND cancel_requested_at > 0;
--sqlite: CREATE INDEX runs_ready_order ON runs (bump DESC, priority DESC, run_at, id) WHERE state = 'pending' AND kind <> 'pull';
--sqlite: CREATE INDEX runs_pull_waiting ON runs (node) WHERE kind = 'pull' AND state IN ('scheduled','pending','retrying');
--sqlite: CREATE INDEX runs_backend_running ON runs (backend) WHERE state = 'running' AND backend <> '';
--postgres: ALTER TABLE runs DROP CONSTRAINT runs_state_check;
--postgres: ALTER TABLE runs ADD CONSTRAINT runs_state_check
--postgres:   CHECK (state IN ('scheduled','pending','running','succeeded','failed','cancelled','retrying','waiting','blocked'));
--postgres: ALTER TABLE runs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
