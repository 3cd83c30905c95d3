package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/datasandbox/dsbx/audit"
)

// ErrNotOpen reports a download of a dataset that is not unconditionally
// open; such data is only used through jobs.
var ErrNotOpen = errors.New("not unconditionally open")

// Download writes the whole of version ref (NAME or NAME@PREFIX) to w as
// Parquet or CSV. Only unconditionally open (无条件开放), active datasets
// and versions may be downloaded; each download is recorded.
func (c *Catalog) Download(ctx context.Context, actor, ref, format string, w io.Writer) error {
	if err := oneOf("format", format, FormatParquet, FormatCSV); err != nil {
		return err
	}
	e, v, err := c.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	switch {
	case e.Open != OpenUnconditional:
		return fmt.Errorf("dataset %s is %s open; use it through a job under an agreement: %w", e.Name, e.Open, ErrNotOpen)
	case e.Status != StatusActive || len(e.SuspendedFields) > 0:
		return fmt.Errorf("dataset %s is suspended after an objection: %w", e.Name, ErrNotOpen)
	case !v.Serves():
		return fmt.Errorf("%s@%.12s is %s: %w", e.Name, v.ID, v.Status, ErrNotOpen)
	}
	path := c.SnapshotPath(e.Name, v)
	if format == FormatCSV {
		// NewCatalog removed the staging directory; no import may have
		// made it since.
		if err := ensureDir(c.staging()); err != nil {
			return fmt.Errorf("download %s: %w", ref, err)
		}
		tmp, err := os.MkdirTemp(c.staging(), "download-")
		if err != nil {
			return fmt.Errorf("download %s: %w", ref, err)
		}
		defer os.RemoveAll(tmp)
		db, err := openImportDB(ctx, tmp)
		if err != nil {
			return fmt.Errorf("download %s: %w", ref, err)
		}
		defer db.Close()
		out := filepath.Join(tmp, "data.csv")
		if _, err := db.ExecContext(ctx, "COPY (SELECT * FROM read_parquet("+literal(path)+")) TO "+literal(out)+" (FORMAT csv, HEADER)"); err != nil {
			return fmt.Errorf("download %s: %w", ref, err)
		}
		path = out
	}
	if _, err := c.log.Append(ctx, audit.Event{
		Kind: "dataset.downloaded", Principal: actor, Subject: "dataset/" + e.Name,
		Data: map[string]any{"dataset": e.Name, "version": v.ID, "format": format},
	}); err != nil {
		return fmt.Errorf("download %s: %w", ref, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("download %s: %w", ref, err)
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
