-- +goose Up
-- Differential privacy: every admitted DP job spends ε (and δ) of its
-- operator's budget on a dataset. The ledger is per operator and dataset,
-- across agreements, and is never reset; the spent budget is the sum.
CREATE TABLE privacy_spend (
    job        INTEGER PRIMARY KEY REFERENCES jobs(id),
    operator   TEXT NOT NULL,
    dataset    TEXT NOT NULL,
    agreement  INTEGER NOT NULL,
    epsilon    REAL NOT NULL,
    delta      REAL NOT NULL,
    spent_at   TEXT NOT NULL
);
CREATE INDEX privacy_spend_operator_dataset ON privacy_spend(operator, dataset);

-- Differencing: the population behind every released cell, per operator and
-- dataset version, so that a new result differing from an earlier one by a
-- few people is held. members is the cell's snapshot row numbers as a
-- serialized Roaring bitmap; NULL when they could not be computed.
CREATE TABLE released_cells (
    id        INTEGER PRIMARY KEY,
    operator  TEXT NOT NULL,
    version   TEXT NOT NULL,
    job       INTEGER NOT NULL REFERENCES jobs(id),
    cell      INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    members   BLOB
);
CREATE INDEX released_cells_lookup ON released_cells(operator, version, count);

-- +goose Down
DROP TABLE released_cells;
DROP TABLE privacy_spend;
