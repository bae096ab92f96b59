-- A pull-mode node's facts, as its agent last uploaded them (a JSON
-- object in Facter's layout), and when. Uploads are rare (the check-in's
-- answer asks for them every facts.upload_every), so they are kept on the
-- node's row; the node list reads facts_at only.
ALTER TABLE nodes ADD COLUMN facts TEXT NOT NULL DEFAULT '{}';
ALTER TABLE nodes ADD COLUMN facts_at BIGINT NOT NULL DEFAULT 0;
