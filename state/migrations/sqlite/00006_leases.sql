-- Leases: a running job belongs to the node that claimed it (lease_owner)
-- until lease_until (RFC 3339, UTC), which that node extends while it runs
-- the job. A job whose lease ran out is queued again, once: attempts counts
-- the claims.

-- +goose Up
ALTER TABLE jobs ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN attempts;
ALTER TABLE jobs DROP COLUMN lease_until;
ALTER TABLE jobs DROP COLUMN lease_owner;
