-- +goose Up
-- Principals hold any set of roles; a provider speaks for an organization
-- (the agency named on the datasets it owns). Disabling a principal revokes
-- its tokens and stops its jobs.
ALTER TABLE principals ADD COLUMN organization TEXT NOT NULL DEFAULT '';
ALTER TABLE principals ADD COLUMN disabled_at TEXT;
ALTER TABLE principals ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE principals DROP COLUMN kind;

-- Tokens get a public ID (for listing and revoking), a label and an expiry.
ALTER TABLE tokens ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE tokens SET id = 'tok_' || substr(hash, 1, 12);
CREATE UNIQUE INDEX tokens_id ON tokens(id);
CREATE INDEX tokens_principal ON tokens(principal);
ALTER TABLE tokens ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at TEXT;
ALTER TABLE tokens ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';

-- Applications for data: answered by the provider before due_at.
CREATE TABLE applications (
    id           INTEGER PRIMARY KEY,
    applicant    TEXT NOT NULL REFERENCES principals(name),
    kind         TEXT NOT NULL,          -- authorized-operation | data-use
    provider     TEXT NOT NULL,          -- the organization owning every dataset asked for
    request      TEXT NOT NULL,          -- JSON of operators.Request
    status       TEXT NOT NULL,          -- pending | approved | refused | withdrawn
    submitted_at TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    decided_at   TEXT,
    decided_by   TEXT NOT NULL DEFAULT '',
    reason       TEXT NOT NULL DEFAULT '',
    agreement_id INTEGER
);
CREATE INDEX applications_status ON applications(status);

-- Agreements now cover several datasets of one provider, with a form per
-- field, several purposes, output rules and quotas; terms are instants
-- (valid_until exclusive) so expiry is exact to the second.
ALTER TABLE agreements RENAME TO agreements_v1;
CREATE TABLE agreements (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL DEFAULT 0,
    holder         TEXT NOT NULL REFERENCES principals(name),
    kind           TEXT NOT NULL,
    provider       TEXT NOT NULL,
    scope          TEXT NOT NULL,        -- JSON [{dataset, version, fields: {name: form}}]
    purposes       TEXT NOT NULL,        -- JSON array
    outputs        TEXT NOT NULL,        -- JSON of operators.OutputRules
    quotas         TEXT NOT NULL,        -- JSON of operators.Quotas
    valid_from     TEXT NOT NULL,        -- RFC 3339
    valid_until    TEXT NOT NULL,        -- RFC 3339, first instant no longer covered
    status         TEXT NOT NULL,        -- active | suspended | revoked | expired
    status_reason  TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL
);
INSERT INTO agreements(id, holder, kind, provider, scope, purposes, outputs, quotas, valid_from, valid_until, status, created_at, created_by)
SELECT a.id, a.operator, 'data-use', COALESCE((SELECT agency FROM datasets d WHERE d.name = a.dataset), ''),
       json_array(json_object('dataset', a.dataset, 'fields', json((SELECT json_group_object(value, 'raw') FROM json_each(a.fields))))),
       json_array(a.purpose), '{"aggregates_only":false,"min_cell_count":0}', '{"max_jobs":0,"jobs_per_day":0}',
       a.valid_from || 'T00:00:00.000000000Z', date(a.valid_until, '+1 day') || 'T00:00:00.000000000Z', a.status, a.created_at, 'admin'
FROM agreements_v1 a;
DROP TABLE agreements_v1;
CREATE INDEX agreements_holder ON agreements(holder);

-- Every status change of an agreement, with its reason and audit entry.
CREATE TABLE agreement_history (
    agreement INTEGER NOT NULL REFERENCES agreements(id),
    audit_seq INTEGER NOT NULL,
    status    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    by        TEXT NOT NULL,
    at        TEXT NOT NULL
);
CREATE INDEX agreement_history_agreement ON agreement_history(agreement);

-- Jobs name the agreement they run under, for quotas and withdrawal.
ALTER TABLE jobs ADD COLUMN agreement_id INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET agreement_id = COALESCE(json_extract(record, '$.decision.agreement_id'), 0);
CREATE INDEX jobs_agreement ON jobs(agreement_id);

-- +goose Down
-- Not reversible: agreements were reshaped and principals.kind dropped.
