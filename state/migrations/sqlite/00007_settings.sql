-- Settings the nodes sharing a state database read: the policy bundle the
-- server has in force (policy_bundle), which job nodes load from the shared
-- data directory and follow.

-- +goose Up
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- +goose Down
DROP TABLE settings;
