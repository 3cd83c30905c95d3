-- +goose Up
-- Catalog entries gain the rest of the 目录 attributes and a suspension state
-- (objection upheld); versions gain their schema, statistics, quality report,
-- synthetic-data profile and life-cycle state (sealed, destroyed).
ALTER TABLE datasets ADD COLUMN legal_basis TEXT NOT NULL DEFAULT '';
ALTER TABLE datasets ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';             -- JSON array
ALTER TABLE datasets ADD COLUMN keys TEXT NOT NULL DEFAULT '[]';             -- JSON array of key fields
ALTER TABLE datasets ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE datasets ADD COLUMN status TEXT NOT NULL DEFAULT 'active';       -- active | suspended
ALTER TABLE datasets ADD COLUMN suspended_fields TEXT NOT NULL DEFAULT '[]'; -- JSON array

ALTER TABLE dataset_versions ADD COLUMN format TEXT NOT NULL DEFAULT '';
ALTER TABLE dataset_versions ADD COLUMN encoding TEXT NOT NULL DEFAULT '';
ALTER TABLE dataset_versions ADD COLUMN importer TEXT NOT NULL DEFAULT '';
ALTER TABLE dataset_versions ADD COLUMN stats TEXT NOT NULL DEFAULT '[]';    -- JSON array of datasets.ColumnStats
ALTER TABLE dataset_versions ADD COLUMN quality TEXT NOT NULL DEFAULT '{}';  -- JSON of datasets.Quality
ALTER TABLE dataset_versions ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';  -- JSON of synthetic.Profile
ALTER TABLE dataset_versions ADD COLUMN status TEXT NOT NULL DEFAULT 'active'; -- active | sealed | destroyed
ALTER TABLE dataset_versions ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE dataset_versions ADD COLUMN status_at TEXT NOT NULL DEFAULT '';

CREATE TABLE objections (
    id         INTEGER PRIMARY KEY,
    dataset    TEXT NOT NULL REFERENCES datasets(name),
    field      TEXT NOT NULL DEFAULT '',     -- '' objects to the whole dataset
    reason     TEXT NOT NULL,
    filer      TEXT NOT NULL,
    filed_at   TEXT NOT NULL,
    status     TEXT NOT NULL,                -- open | upheld | dismissed
    decider    TEXT NOT NULL DEFAULT '',
    decision   TEXT NOT NULL DEFAULT '',
    decided_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX objections_dataset ON objections(dataset);

-- +goose Down
DROP TABLE objections;
ALTER TABLE datasets DROP COLUMN legal_basis;
ALTER TABLE datasets DROP COLUMN tags;
ALTER TABLE datasets DROP COLUMN keys;
ALTER TABLE datasets DROP COLUMN created_by;
ALTER TABLE datasets DROP COLUMN status;
ALTER TABLE datasets DROP COLUMN suspended_fields;
ALTER TABLE dataset_versions DROP COLUMN format;
ALTER TABLE dataset_versions DROP COLUMN encoding;
ALTER TABLE dataset_versions DROP COLUMN importer;
ALTER TABLE dataset_versions DROP COLUMN stats;
ALTER TABLE dataset_versions DROP COLUMN quality;
ALTER TABLE dataset_versions DROP COLUMN profile;
ALTER TABLE dataset_versions DROP COLUMN status;
ALTER TABLE dataset_versions DROP COLUMN status_reason;
ALTER TABLE dataset_versions DROP COLUMN status_at;
