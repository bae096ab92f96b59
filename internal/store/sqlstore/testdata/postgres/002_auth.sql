-- API tokens and the audit trail. Times are unix microseconds (0 = unset).
-- A token's secret is never stored: only the hex SHA-256 of it.
CREATE TABLE tokens (
  id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         TEXT    NOT NULL,
  role         TEXT    NOT NULL CHECK (role IN ('admin','operator','viewer')),
  hash         TEXT    NOT NULL UNIQUE,
  created_by   TEXT    NOT NULL DEFAULT '',
  created_at   BIGINT  NOT NULL,
  last_used_at BIGINT  NOT NULL DEFAULT 0,
  revoked_at   BIGINT  NOT NULL DEFAULT 0
);
-- A name is unique among live tokens, and free again once revoked.
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at = 0;

-- Every mutation: who did what to which object, when and from where.
CREATE TABLE audit (
  id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at     BIGINT NOT NULL,
  actor  TEXT   NOT NULL,
  role   TEXT   NOT NULL DEFAULT '',
  action TEXT   NOT NULL,
  object TEXT   NOT NULL DEFAULT '',
  remote TEXT   NOT NULL DEFAULT '',
  detail TEXT   NOT NULL DEFAULT ''    -- JSON with the request's non-secret fields
);
CREATE INDEX audit_actor ON audit (actor, id);
