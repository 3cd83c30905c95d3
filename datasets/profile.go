package datasets

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/datasandbox/dsbx/datasets/synthetic"
)

// ProfileMinCount is the k of synthetic-data profiles: a value seen fewer
// than k times in a version never reaches its profile.
const ProfileMinCount = 10

func buildProfile(ctx context.Context, snapshot string) ([]byte, error) {
	p, err := synthetic.Build(ctx, snapshot, ProfileMinCount)
	if err != nil {
		return nil, fmt.Errorf("synthetic-data profile: %w", err)
	}
	return json.Marshal(p)
}

// Profile returns the synthetic-data profile of the version ref names: the
// schema and value distributions sandbox mode draws dummy rows from, with no
// rare real value in it. Closed and suspended datasets have none
// (ErrNotOpen).
func (c *Catalog) Profile(ctx context.Context, ref string) (synthetic.Profile, error) {
	e, v, err := c.Resolve(ctx, ref)
	if err != nil {
		return synthetic.Profile{}, err
	}
	if v.Status == VersionDestroyed {
		return synthetic.Profile{}, fmt.Errorf("%s@%.12s was destroyed: %w", e.Name, v.ID, ErrNotFound)
	}
	// A profile still describes the data's distributions: none for data
	// that is never opened or that an upheld objection suspended.
	switch {
	case e.Open == OpenClosed:
		return synthetic.Profile{}, fmt.Errorf("dataset %s is closed; it has no dummy data: %w", e.Name, ErrNotOpen)
	case e.Status != StatusActive || len(e.SuspendedFields) > 0:
		return synthetic.Profile{}, fmt.Errorf("dataset %s is suspended after an objection; it has no dummy data until reinstated: %w", e.Name, ErrNotOpen)
	}
	var raw string
	if err := c.db.QueryRowContext(ctx, `SELECT profile FROM dataset_versions WHERE dataset = ? AND version = ?`, e.Name, v.ID).Scan(&raw); err != nil {
		return synthetic.Profile{}, fmt.Errorf("profile of %s: %w", ref, err)
	}
	var p synthetic.Profile
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return synthetic.Profile{}, fmt.Errorf("profile of %s: %w", ref, err)
	}
	return p, nil
}
