-- +goose Up
CREATE TABLE datasets (
    name        TEXT PRIMARY KEY,
    title       TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    agency      TEXT NOT NULL DEFAULT '',
    grade       TEXT NOT NULL,
    open        TEXT NOT NULL,
    share       TEXT NOT NULL,
    frequency   TEXT NOT NULL DEFAULT '',
    fields      TEXT NOT NULL,           -- JSON array of datasets.Field
    created_at  TEXT NOT NULL
);

CREATE TABLE dataset_versions (
    dataset    TEXT NOT NULL REFERENCES datasets(name),
    version    TEXT NOT NULL,            -- hex SHA-256 of the Parquet snapshot
    rows       INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
);

CREATE TABLE principals (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    roles      TEXT NOT NULL,            -- JSON array
    created_at TEXT NOT NULL
);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,         -- hex SHA-256 of the token
    principal  TEXT NOT NULL REFERENCES principals(name),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE agreements (
    id          INTEGER PRIMARY KEY,
    operator    TEXT NOT NULL REFERENCES principals(name),
    dataset     TEXT NOT NULL,
    fields      TEXT NOT NULL,           -- JSON array
    purpose     TEXT NOT NULL,
    valid_from  TEXT NOT NULL,           -- YYYY-MM-DD
    valid_until TEXT NOT NULL,           -- YYYY-MM-DD, inclusive
    status      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    operator      TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    version       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    code          TEXT NOT NULL,
    code_sha256   TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    state         TEXT NOT NULL,
    record        TEXT NOT NULL,         -- JSON of the job's decision, analysis, report and checks
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX jobs_operator ON jobs(operator);
CREATE INDEX jobs_state ON jobs(state);

-- +goose Down
DROP TABLE jobs;
DROP TABLE agreements;
DROP TABLE tokens;
DROP TABLE principals;
DROP TABLE dataset_versions;
DROP TABLE datasets;
