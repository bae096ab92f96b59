-- Live output of running attempts, for watchers: whole lines of stdout or
-- stderr as the server running the attempt flushed them. A run's chunks
-- are deleted when an attempt of it ends (its result keeps the output), so
--sqlite: -- the table only holds output of attempts still running. AUTOINCREMENT
--sqlite: -- keeps ids from coming back once the newest chunks are deleted: a watcher
--sqlite: -- pages by id and must never see an id twice. Times are unix microseconds.
--postgres: -- the table only holds output of attempts still running. Times are unix
--postgres: -- microseconds.
CREATE TABLE run_output (
  id         {{id_never_reused}},
  run_id     BIGINT  NOT NULL REFERENCES runs(id),
  attempt    INTEGER NOT NULL,
  stream     TEXT    NOT NULL CHECK (stream IN ('stdout','stderr')),
--sqlite:   data       BLOB    NOT NULL,               -- any bytes
--postgres:   data       BYTEA   NOT NULL,               -- any bytes
  created_at BIGINT  NOT NULL
);
-- A run's chunks in order: the deletes, and a job's listing.
CREATE INDEX run_output_run ON run_output (run_id, id);

-- Set (and never reset) once a chunk of the run was stored. The writers
-- that end attempts read it with the run and delete the run's chunks only
-- when it is set, so runs that print nothing cost them no delete.
ALTER TABLE runs ADD COLUMN has_output INTEGER NOT NULL DEFAULT 0;
--postgres:
--postgres: -- Like runs, a queue table: rows come and go with the attempts.
--postgres: ALTER TABLE run_output SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
