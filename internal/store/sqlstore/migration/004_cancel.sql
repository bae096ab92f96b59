-- Cancelling a job asks its running runs to stop: cancel_requested_at is
-- when (unix microseconds; 0 = never). The holder of a running run polls
-- for the requests through runs_cancel_requested, which holds only running
-- runs whose cancel was requested: almost always none.
ALTER TABLE runs ADD COLUMN cancel_requested_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX runs_cancel_requested ON runs (lease_owner) WHERE state = 'running' AND cancel_requested_at > 0;
