package audit

import "time"

// options holds the settings changed by Option values.
type options struct {
	now func() time.Time
}

// Option changes how Open sets up a Log.
type Option func(*options)

// WithClock makes the log take entry times from now instead of time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}
