-- The PostgreSQL state schema, equal to the SQLite one after its migrations
-- 1 to 5. It starts at version 5 so that later migrations carry the same
-- number in both directories.
--
-- Types: SQLite's INTEGER is 64-bit (BIGINT), REAL is DOUBLE PRECISION,
-- BLOB is BYTEA. Text columns collate as "C", byte order as SQLite does, so
-- that ORDER BY gives the same order on both. Times are RFC 3339 text, as
-- in SQLite.

-- +goose Up
CREATE TABLE datasets (
    name             TEXT COLLATE "C" PRIMARY KEY,
    title            TEXT COLLATE "C" NOT NULL DEFAULT '',
    description      TEXT COLLATE "C" NOT NULL DEFAULT '',
    agency           TEXT COLLATE "C" NOT NULL DEFAULT '',
    grade            TEXT COLLATE "C" NOT NULL,
    open             TEXT COLLATE "C" NOT NULL,
    share            TEXT COLLATE "C" NOT NULL,
    frequency        TEXT COLLATE "C" NOT NULL DEFAULT '',
    fields           TEXT COLLATE "C" NOT NULL,           -- JSON array of datasets.Field
    created_at       TEXT COLLATE "C" NOT NULL,
    legal_basis      TEXT COLLATE "C" NOT NULL DEFAULT '',
    tags             TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    keys             TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    created_by       TEXT COLLATE "C" NOT NULL DEFAULT '',
    status           TEXT COLLATE "C" NOT NULL DEFAULT 'active',
    suspended_fields TEXT COLLATE "C" NOT NULL DEFAULT '[]'
);

CREATE TABLE dataset_versions (
    -- SQLite's implicit rowid: insertion order, which the catalog uses to
    -- order versions imported within the same instant.
    rowid         BIGINT GENERATED ALWAYS AS IDENTITY,
    dataset       TEXT COLLATE "C" NOT NULL REFERENCES datasets(name),
    version       TEXT COLLATE "C" NOT NULL,
    rows          BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    source        TEXT COLLATE "C" NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    format        TEXT COLLATE "C" NOT NULL DEFAULT '',
    encoding      TEXT COLLATE "C" NOT NULL DEFAULT '',
    importer      TEXT COLLATE "C" NOT NULL DEFAULT '',
    stats         TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    quality       TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    profile       TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    status        TEXT COLLATE "C" NOT NULL DEFAULT 'active',
    status_reason TEXT COLLATE "C" NOT NULL DEFAULT '',
    status_at     TEXT COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (dataset, version)
);

CREATE TABLE principals (
    name            TEXT COLLATE "C" PRIMARY KEY,
    roles           TEXT COLLATE "C" NOT NULL,            -- JSON array
    created_at      TEXT COLLATE "C" NOT NULL,
    organization    TEXT COLLATE "C" NOT NULL DEFAULT '',
    disabled_at     TEXT COLLATE "C",
    disabled_reason TEXT COLLATE "C" NOT NULL DEFAULT ''
);

CREATE TABLE tokens (
    hash       TEXT COLLATE "C" PRIMARY KEY,         -- hex SHA-256 of the token
    principal  TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    created_at TEXT COLLATE "C" NOT NULL,
    revoked_at TEXT COLLATE "C",
    id         TEXT COLLATE "C" NOT NULL DEFAULT '',
    label      TEXT COLLATE "C" NOT NULL DEFAULT '',
    expires_at TEXT COLLATE "C",
    revoked_by TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX tokens_id ON tokens(id);
CREATE INDEX tokens_principal ON tokens(principal);

CREATE TABLE jobs (
    id           BIGINT PRIMARY KEY,
    operator     TEXT COLLATE "C" NOT NULL,
    dataset      TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL,
    code         TEXT COLLATE "C" NOT NULL,
    code_sha256  TEXT COLLATE "C" NOT NULL,
    purpose      TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL,
    record       TEXT COLLATE "C" NOT NULL,         -- JSON of the job's decision, analysis, report and checks
    created_at   TEXT COLLATE "C" NOT NULL,
    updated_at   TEXT COLLATE "C" NOT NULL,
    agreement_id BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_operator ON jobs(operator);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_agreement ON jobs(agreement_id);

CREATE TABLE objections (
    id         BIGINT PRIMARY KEY,
    dataset    TEXT COLLATE "C" NOT NULL REFERENCES datasets(name),
    field      TEXT COLLATE "C" NOT NULL DEFAULT '',     -- '' objects to the whole dataset
    reason     TEXT COLLATE "C" NOT NULL,
    filer      TEXT COLLATE "C" NOT NULL,
    filed_at   TEXT COLLATE "C" NOT NULL,
    status     TEXT COLLATE "C" NOT NULL,                -- open | upheld | dismissed
    decider    TEXT COLLATE "C" NOT NULL DEFAULT '',
    decision   TEXT COLLATE "C" NOT NULL DEFAULT '',
    decided_at TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX objections_dataset ON objections(dataset);

CREATE TABLE applications (
    id           BIGINT PRIMARY KEY,
    applicant    TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    kind         TEXT COLLATE "C" NOT NULL,          -- authorized-operation | data-use
    provider     TEXT COLLATE "C" NOT NULL,          -- the organization owning every dataset asked for
    request      TEXT COLLATE "C" NOT NULL,          -- JSON of operators.Request
    status       TEXT COLLATE "C" NOT NULL,          -- pending | approved | refused | withdrawn
    submitted_at TEXT COLLATE "C" NOT NULL,
    due_at       TEXT COLLATE "C" NOT NULL,
    decided_at   TEXT COLLATE "C",
    decided_by   TEXT COLLATE "C" NOT NULL DEFAULT '',
    reason       TEXT COLLATE "C" NOT NULL DEFAULT '',
    agreement_id BIGINT
);
CREATE INDEX applications_status ON applications(status);

CREATE TABLE agreements (
    id             BIGINT PRIMARY KEY,
    application_id BIGINT NOT NULL DEFAULT 0,
    holder         TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    kind           TEXT COLLATE "C" NOT NULL,
    provider       TEXT COLLATE "C" NOT NULL,
    scope          TEXT COLLATE "C" NOT NULL,        -- JSON [{dataset, version, fields: {name: form}}]
    purposes       TEXT COLLATE "C" NOT NULL,        -- JSON array
    outputs        TEXT COLLATE "C" NOT NULL,        -- JSON of operators.OutputRules
    quotas         TEXT COLLATE "C" NOT NULL,        -- JSON of operators.Quotas
    valid_from     TEXT COLLATE "C" NOT NULL,        -- RFC 3339
    valid_until    TEXT COLLATE "C" NOT NULL,        -- RFC 3339, first instant no longer covered
    status         TEXT COLLATE "C" NOT NULL,        -- active | suspended | revoked | expired
    status_reason  TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at     TEXT COLLATE "C" NOT NULL,
    created_by     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX agreements_holder ON agreements(holder);

CREATE TABLE agreement_history (
    agreement BIGINT NOT NULL REFERENCES agreements(id),
    audit_seq BIGINT NOT NULL,
    status    TEXT COLLATE "C" NOT NULL,
    reason    TEXT COLLATE "C" NOT NULL,
    "by"      TEXT COLLATE "C" NOT NULL,
    at        TEXT COLLATE "C" NOT NULL
);
CREATE INDEX agreement_history_agreement ON agreement_history(agreement);

CREATE TABLE privacy_spend (
    job       BIGINT PRIMARY KEY REFERENCES jobs(id),
    operator  TEXT COLLATE "C" NOT NULL,
    dataset   TEXT COLLATE "C" NOT NULL,
    agreement BIGINT NOT NULL,
    epsilon   DOUBLE PRECISION NOT NULL,
    delta     DOUBLE PRECISION NOT NULL,
    spent_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX privacy_spend_operator_dataset ON privacy_spend(operator, dataset);

CREATE TABLE released_cells (
    id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    operator TEXT COLLATE "C" NOT NULL,
    version  TEXT COLLATE "C" NOT NULL,
    job      BIGINT NOT NULL REFERENCES jobs(id),
    cell     BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    members  BYTEA
);
CREATE INDEX released_cells_lookup ON released_cells(operator, version, count);

CREATE TABLE audit_index (
    seq       BIGINT PRIMARY KEY,
    time      TEXT COLLATE "C" NOT NULL,          -- UTC, fixed width (2006-01-02T15:04:05.000000000Z), so strings sort in time order
    kind      TEXT COLLATE "C" NOT NULL,
    principal TEXT COLLATE "C" NOT NULL,
    subject   TEXT COLLATE "C" NOT NULL,
    operator  TEXT COLLATE "C" NOT NULL,          -- the job's submitter for job events, else the principal
    dataset   TEXT COLLATE "C" NOT NULL,          -- '' when the entry concerns none
    job       BIGINT NOT NULL,                    -- 0 when the entry concerns none
    decision  TEXT COLLATE "C" NOT NULL           -- denied | held | released | rejected | failed | stopped | refused | ''
);
CREATE INDEX audit_index_operator ON audit_index(operator, seq);
CREATE INDEX audit_index_dataset ON audit_index(dataset, seq);
CREATE INDEX audit_index_job ON audit_index(job, seq);
CREATE INDEX audit_index_kind ON audit_index(kind, seq);
CREATE INDEX audit_index_time ON audit_index(time);

-- +goose Down
DROP TABLE audit_index;
DROP TABLE released_cells;
DROP TABLE privacy_spend;
DROP TABLE agreement_history;
DROP TABLE agreements;
DROP TABLE applications;
DROP TABLE objections;
DROP TABLE jobs;
DROP TABLE tokens;
DROP TABLE principals;
DROP TABLE dataset_versions;
DROP TABLE datasets;
