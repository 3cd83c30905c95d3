// Package operators holds who may use the platform and under which terms:
// principals and their roles, their credentials, applications for data and
// the data use agreements (数据利用协议) approved from them.
package operators

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/state"
)

// Recorder appends an event to the audit log; the change it describes must
// not take effect unless it returns nil.
type Recorder interface {
	Append(ctx context.Context, e audit.Event) (audit.Entry, error)
}

// Directory stores principals, credentials, applications and agreements.
type Directory struct {
	db           *state.DB
	log          Recorder
	now          func() time.Time
	responseDays int
}

// ResponseDays is how many working days a provider has, by default, to
// answer an application.
const ResponseDays = 10

// NewDirectory returns a directory over db that records changes in log.
func NewDirectory(db *state.DB, log Recorder) *Directory {
	return &Directory{db: db, log: log, now: time.Now, responseDays: ResponseDays}
}

// SetClock replaces the directory's clock; tests use it to move time.
func (d *Directory) SetClock(now func() time.Time) { d.now = now }

// SetResponseDays sets how many working days providers have to answer an
// application; it applies to applications submitted afterwards.
func (d *Directory) SetResponseDays(n int) { d.responseDays = n }

// ErrNotFound reports an unknown principal, credential, application or
// agreement, or one the caller may not see.
var ErrNotFound = errors.New("not found")

// ErrUnauthenticated reports a missing, unknown, expired or revoked token,
// or one of a disabled principal.
var ErrUnauthenticated = errors.New("unauthenticated")

// InputError is a problem with what the caller supplied; nothing changed.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// ForbiddenError is an action outside the caller's roles or ownership;
// nothing changed.
type ForbiddenError struct{ Msg string }

func (e *ForbiddenError) Error() string { return e.Msg }

func forbiddenf(format string, args ...any) error {
	return &ForbiddenError{Msg: fmt.Sprintf(format, args...)}
}

// ConflictError is an action the object's current state does not allow,
// such as deciding an application twice; nothing changed.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

func conflictf(format string, args ...any) error {
	return &ConflictError{Msg: fmt.Sprintf(format, args...)}
}

// record appends e to the audit log, naming what failed.
func (d *Directory) record(ctx context.Context, what string, e audit.Event) (audit.Entry, error) {
	entry, err := d.log.Append(ctx, e)
	if err != nil {
		return audit.Entry{}, fmt.Errorf("%s: record: %w", what, err)
	}
	return entry, nil
}

// timeLayout stores instants in UTC at fixed width, so that SQL compares
// them as strings in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func nullTime(s sql.NullString) *time.Time {
	if !s.Valid || s.String == "" {
		return nil
	}
	t := parseTime(s.String)
	return &t
}
