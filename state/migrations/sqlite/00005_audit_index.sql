-- +goose Up
-- A queryable index of the audit log for regulators: one row per entry,
-- with the operator, dataset, job and decision it concerns. It is derived
-- from the log and can be rebuilt from it at any time (DELETE FROM
-- audit_index); the log, not this table, is the record.
CREATE TABLE audit_index (
    seq        INTEGER PRIMARY KEY,
    time       TEXT NOT NULL,          -- UTC, fixed width (2006-01-02T15:04:05.000000000Z), so strings sort in time order
    kind       TEXT NOT NULL,
    principal  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    operator   TEXT NOT NULL,          -- the job's submitter for job events, else the principal
    dataset    TEXT NOT NULL,          -- '' when the entry concerns none
    job        INTEGER NOT NULL,       -- 0 when the entry concerns none
    decision   TEXT NOT NULL           -- denied | held | released | rejected | failed | stopped | refused | ''
);
CREATE INDEX audit_index_operator ON audit_index(operator, seq);
CREATE INDEX audit_index_dataset ON audit_index(dataset, seq);
CREATE INDEX audit_index_job ON audit_index(job, seq);
CREATE INDEX audit_index_kind ON audit_index(kind, seq);
CREATE INDEX audit_index_time ON audit_index(time);

-- +goose Down
DROP TABLE audit_index;
