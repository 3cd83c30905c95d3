package datasets

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/datasandbox/dsbx/audit"
)

// Seal seals version ref ("NAME@PREFIX") of a dataset (封存): no new job may
// use it, but it is kept so that audits can re-run past jobs on it.
func (c *Catalog) Seal(ctx context.Context, actor, ref, reason string) (Version, error) {
	return c.changeVersion(ctx, actor, ref, reason, VersionSealed)
}

// Destroy destroys version ref (销毁): its snapshot file is removed; the
// catalog keeps its hash, statistics and a destruction event.
func (c *Catalog) Destroy(ctx context.Context, actor, ref, reason string) (Version, error) {
	return c.changeVersion(ctx, actor, ref, reason, VersionDestroyed)
}

func (c *Catalog) changeVersion(ctx context.Context, actor, ref, reason, status string) (Version, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return Version{}, inputErrorf("give a reason for the record: why is %s %s?", ref, status)
	}
	if !strings.Contains(ref, "@") {
		return Version{}, inputErrorf("name the version to %s as NAME@VERSION; %s is a whole dataset", verb(status), ref)
	}
	e, v, err := c.Resolve(ctx, ref)
	if err != nil {
		return Version{}, err
	}
	switch {
	case v.Status == status:
		return Version{}, inputErrorf("%s@%.12s is already %s", e.Name, v.ID, status)
	case v.Status == VersionDestroyed:
		return Version{}, inputErrorf("%s@%.12s was destroyed; nothing is left to %s", e.Name, v.ID, verb(status))
	}
	now := c.now().UTC()
	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset." + status, Principal: actor, Subject: "dataset/" + e.Name,
		Data: map[string]any{"dataset": e.Name, "version": v.ID, "reason": reason, "previous": v.Status},
	}); err != nil {
		return Version{}, fmt.Errorf("%s %s: %w", verb(status), ref, err)
	}
	if status == VersionDestroyed {
		path := c.SnapshotPath(e.Name, v)
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return Version{}, fmt.Errorf("destroy %s: %w", ref, err)
		}
		if err := os.RemoveAll(c.ViewDir(e.Name, v)); err != nil {
			return Version{}, fmt.Errorf("destroy %s: views: %w", ref, err)
		}
	}
	if _, err := c.db.ExecContext(ctx, `UPDATE dataset_versions SET status = ?, status_reason = ?, status_at = ? WHERE dataset = ? AND version = ?`,
		status, reason, now.Format(time.RFC3339Nano), e.Name, v.ID); err != nil {
		return Version{}, fmt.Errorf("%s %s: %w", verb(status), ref, err)
	}
	if status == VersionDestroyed {
		// Values derived from the data go with it: the extremes, examples
		// of bad values and the synthetic-data profile.
		v = v.redacted(nil)
		stats, _ := marshal(v.Stats)
		quality, _ := marshal(v.Quality)
		if _, err := c.db.ExecContext(ctx, `UPDATE dataset_versions SET stats = ?, quality = ?, profile = '{}' WHERE dataset = ? AND version = ?`,
			stats, quality, e.Name, v.ID); err != nil {
			return Version{}, fmt.Errorf("destroy %s: %w", ref, err)
		}
	}
	v.Status, v.StatusReason, v.StatusAt = status, reason, &now
	return v, nil
}

func verb(status string) string {
	if status == VersionSealed {
		return "seal"
	}
	return "destroy"
}
