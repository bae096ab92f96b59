-- Pull mode. Times are unix microseconds (0 = unset).
--
-- A pull job's runs are run by their node's own agent (`muster agent`),
-- which claims them when it checks in: jobs.kind gains 'pull'.
--sqlite: -- SQLite cannot change a CHECK constraint in place, so jobs is rebuilt
--sqlite: -- (the store runs migrations with foreign keys off and checks them
--sqlite: -- before committing; runs and requests keep referring to "jobs").
--sqlite: CREATE TABLE jobs_006 (
--sqlite:   id              {{id}},
--sqlite:   kind            TEXT    NOT NULL CHECK (kind IN ('command','task','script','plan','pull')),
--sqlite:   spec            TEXT    NOT NULL,          -- JSON, stored as given (callers encrypt secrets)
--sqlite:   spec_hash       TEXT    NOT NULL,
--sqlite:   targets         TEXT    NOT NULL,          -- JSON array of node names
--sqlite:   priority        INTEGER NOT NULL,
--sqlite:   run_at          BIGINT  NOT NULL,
--sqlite:   every_us        BIGINT  NOT NULL DEFAULT 0,
--sqlite:   continuous      INTEGER NOT NULL DEFAULT 0,
--sqlite:   max_retries     INTEGER NOT NULL DEFAULT 0,
--sqlite:   timeout_us      BIGINT  NOT NULL DEFAULT 0,
--sqlite:   on_lease_expiry TEXT    NOT NULL CHECK (on_lease_expiry IN ('retry','fail')),
--sqlite:   created_by      TEXT    NOT NULL DEFAULT '',
--sqlite:   created_at      BIGINT  NOT NULL,
--sqlite:   cancelled_at    BIGINT  NOT NULL DEFAULT 0
--sqlite: );
--sqlite: INSERT INTO jobs_006 (id, kind, spec, spec_hash, targets, priority, run_at, every_us, continuous, max_retries,
--sqlite:   timeout_us, on_lease_expiry, created_by, created_at, cancelled_at)
--sqlite:   SELECT id, kind, spec, spec_hash, targets, priority, run_at, every_us, continuous, max_retries,
--sqlite:   timeout_us, on_lease_expiry, created_by, created_at, cancelled_at FROM jobs;
--sqlite: DROP TABLE jobs;
--sqlite: ALTER TABLE jobs_006 RENAME TO jobs;
--postgres: ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
--postgres: ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('command','task','script','plan','pull'));

-- A server's claim (ClaimRuns) never takes a pull run: the ready order it
-- reads holds push runs alone, so pull runs waiting for their agents cost
-- it nothing. An agent's claim (ClaimNodeRun) reads its node's few waiting
-- pull runs through runs_pull_waiting.
DROP INDEX runs_ready_order;
CREATE INDEX runs_ready_order ON runs (bump DESC, priority DESC, run_at, id) WHERE state = 'pending' AND kind <> 'pull';
CREATE INDEX runs_pull_waiting ON runs (node) WHERE kind = 'pull' AND state IN ('scheduled','pending','retrying');

-- The nodes that run `muster agent`, by the certname in their
-- certificate. csr is the pending request (DER, empty once signed); serial
-- (hex), cert (DER) and cert_expires_at describe the certificate in force
-- while the node is signed, and the last one it held once revoked.
CREATE TABLE nodes (
  certname        TEXT    NOT NULL PRIMARY KEY,
  state           TEXT    NOT NULL CHECK (state IN ('pending','signed','revoked')),
  csr             {{bytes}} NOT NULL,
  serial          TEXT    NOT NULL DEFAULT '',
  cert            {{bytes}} NOT NULL,
  cert_expires_at BIGINT  NOT NULL DEFAULT 0,
  enrolled_at     BIGINT  NOT NULL,
  signed_at       BIGINT  NOT NULL DEFAULT 0,
  enrolled_with   TEXT    NOT NULL DEFAULT '',   -- the enrollment token's name
  last_run_id     BIGINT  NOT NULL DEFAULT 0,
  last_run_at     BIGINT  NOT NULL DEFAULT 0,
  last_checkin_at BIGINT  NOT NULL DEFAULT 0
);
-- The agent listener's check on every handshake (SerialRevoked): is this
-- the serial in force for a signed node? A serial names one certificate.
CREATE UNIQUE INDEX nodes_signed_serial ON nodes (serial) WHERE state = 'signed';

-- Enrollment tokens. As with API tokens, only the hex SHA-256 of the
-- secret is stored. uses is how many enrollments a token allows (0: no
-- limit), used how many it made; expires_at 0 is never. certnames is the
-- autosign policy: comma-separated globs.
CREATE TABLE enroll_tokens (
  id          {{id}},
  name        TEXT    NOT NULL,
  hash        TEXT    NOT NULL UNIQUE,
  uses        INTEGER NOT NULL DEFAULT 0,
  used        INTEGER NOT NULL DEFAULT 0,
  expires_at  BIGINT  NOT NULL DEFAULT 0,
  certnames   TEXT    NOT NULL DEFAULT '',
  created_by  TEXT    NOT NULL DEFAULT '',
  created_at  BIGINT  NOT NULL,
  revoked_at  BIGINT  NOT NULL DEFAULT 0
);
-- A name is unique among live tokens, and free again once revoked.
CREATE UNIQUE INDEX enroll_tokens_live_name ON enroll_tokens (name) WHERE revoked_at = 0;
