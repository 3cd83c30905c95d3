// Package alerts watches the audit log for the patterns the regulations
// name as risks (repeated denials, probing with many near-identical small
// queries, results held for disclosure, differencing attempts, use outside
// agreed hours) and raises each as an alert.raised entry in the log itself,
// so alerts are part of the tamper-evident record and regulators query them
// like any other event.
package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/datasandbox/dsbx/audit"
	"github.com/datasandbox/dsbx/audit/index"
)

// Kind is the audit event kind of an alert.
const Kind = "alert.raised"

// Rules are the thresholds of the alerts; zero fields take the defaults.
type Rules struct {
	Denials     int           // job denials by one operator within DenialsIn (default 5 in 1 h)
	DenialsIn   time.Duration //
	Probes      int           // submissions of the same query shape by one operator on one dataset within ProbesIn (default 10 in 10 min)
	ProbesIn    time.Duration //
	Holds       int           // results of one operator held within HoldsIn (default 3 in 24 h)
	HoldsIn     time.Duration //
	Hours       *[2]int       // agreed hours [from, to) in China Standard Time; nil: any time
	Zone        *time.Location
	Suppression time.Duration // an alert of one rule about one operator is not raised again within this (default 1 h)
}

func (r Rules) withDefaults() Rules {
	def := func(n *int, d *time.Duration, nv int, dv time.Duration) {
		if *n <= 0 {
			*n = nv
		}
		if *d <= 0 {
			*d = dv
		}
	}
	def(&r.Denials, &r.DenialsIn, 5, time.Hour)
	def(&r.Probes, &r.ProbesIn, 10, 10*time.Minute)
	def(&r.Holds, &r.HoldsIn, 3, 24*time.Hour)
	if r.Suppression <= 0 {
		r.Suppression = time.Hour
	}
	if r.Zone == nil {
		r.Zone = time.FixedZone("CST", 8*3600)
	}
	return r
}

// Alert is the data of an alert.raised entry.
type Alert struct {
	Rule     string  `json:"rule"`     // repeated_denials, probing, repeated_holds, differencing, outside_hours
	Operator string  `json:"operator"` // whom it is about
	Dataset  string  `json:"dataset,omitempty"`
	Message  string  `json:"message"`
	Entries  []int64 `json:"entries"` // the entries that raised it
	Through  int64   `json:"through"` // the last entry the monitor had read
}

// Appender appends to the audit log.
type Appender interface {
	Append(ctx context.Context, ev audit.Event) (audit.Entry, error)
}

// Monitor reads the log through its index and raises alerts.
type Monitor struct {
	idx   *index.Index
	log   Appender
	rules Rules

	mu   sync.Mutex
	next int64 // the first entry not yet read; -1 until Scan learns it from the log
}

// New returns a monitor of the log behind idx that appends alerts to log.
func New(idx *index.Index, log Appender, rules Rules) *Monitor {
	return &Monitor{idx: idx, log: log, rules: rules.withDefaults(), next: -1}
}

// Scan reads the entries appended since the last Scan and raises the
// alerts they call for, returning them. After a restart it resumes after
// the last entry the latest alert says it had read.
func (m *Monitor) Scan(ctx context.Context) ([]audit.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.next < 0 {
		if err := m.resume(ctx); err != nil {
			return nil, err
		}
	}
	var raised []audit.Entry
	for {
		es, err := m.idx.Query(ctx, index.Filter{Since: m.next, Limit: index.MaxLimit})
		if err != nil {
			return raised, fmt.Errorf("alerts: %w", err)
		}
		if len(es) == 0 {
			return raised, nil
		}
		for _, e := range es {
			m.next = e.Seq + 1
			if e.Kind == Kind {
				continue
			}
			as, err := m.examine(ctx, e)
			if err != nil {
				return raised, err
			}
			for _, a := range as {
				a.Through = e.Seq
				entry, err := m.raise(ctx, a, e.Time)
				if err != nil {
					return raised, err
				}
				if entry.Seq >= 0 {
					raised = append(raised, entry)
				}
			}
		}
	}
}

// resume sets next after the entries the latest alert had read.
func (m *Monitor) resume(ctx context.Context) error {
	m.next = 0
	var last *audit.Entry
	for since := int64(0); ; {
		es, err := m.idx.Query(ctx, index.Filter{Kind: Kind, Since: since, Limit: index.MaxLimit})
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		if len(es) == 0 {
			break
		}
		last = &es[len(es)-1]
		since = last.Seq + 1
	}
	if last != nil {
		var a Alert
		if json.Unmarshal(last.Data, &a) == nil {
			m.next = a.Through + 1
		}
	}
	return nil
}

// raise appends alert a, called for by an entry of time at, unless one of
// the same rule about the same operator and dataset was raised within the
// suppression window before; a suppressed alert comes back with Seq -1.
func (m *Monitor) raise(ctx context.Context, a Alert, at time.Time) (audit.Entry, error) {
	recent, err := m.idx.Query(ctx, index.Filter{Kind: Kind, Operator: a.Operator, From: at.Add(-m.rules.Suppression)})
	if err != nil {
		return audit.Entry{}, fmt.Errorf("alerts: %w", err)
	}
	for _, e := range recent {
		var old Alert
		if json.Unmarshal(e.Data, &old) == nil && old.Rule == a.Rule && old.Dataset == a.Dataset {
			return audit.Entry{Seq: -1}, nil
		}
	}
	e, err := m.log.Append(ctx, audit.Event{Kind: Kind, Subject: "principal/" + a.Operator, Data: a})
	if err != nil {
		return audit.Entry{}, fmt.Errorf("alerts: raise %s: %w", a.Rule, err)
	}
	return e, nil
}

// examine returns the alerts entry e calls for.
func (m *Monitor) examine(ctx context.Context, e audit.Entry) ([]Alert, error) {
	var data struct {
		Dataset string `json:"dataset"`
		State   string `json:"state"`
		SQL     string `json:"sql"`
		Release struct {
			Reasons []struct {
				Code string `json:"code"`
			} `json:"reasons"`
		} `json:"release"`
	}
	json.Unmarshal(e.Data, &data) // data is an object or absent; missing fields stay empty
	r := m.rules
	var out []Alert
	switch e.Kind {
	case "job.decided":
		if data.State != index.Denied {
			break
		}
		op, ds, err := m.about(ctx, e)
		if err != nil {
			return nil, err
		}
		es, err := m.idx.Query(ctx, index.Filter{Operator: op, Decision: index.Denied, From: e.Time.Add(-r.DenialsIn), To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		if len(es) >= r.Denials {
			out = append(out, Alert{Rule: "repeated_denials", Operator: op, Dataset: ds, Entries: seqsOf(es),
				Message: fmt.Sprintf("%s had %d jobs denied within %s", op, len(es), r.DenialsIn)})
		}
	case "job.submitted":
		op := e.Principal
		if r.Hours != nil {
			h := e.Time.In(r.Zone).Hour()
			if h < r.Hours[0] || h >= r.Hours[1] {
				out = append(out, Alert{Rule: "outside_hours", Operator: op, Dataset: data.Dataset, Entries: []int64{e.Seq},
					Message: fmt.Sprintf("%s submitted a job at %s, outside the agreed hours %02d:00–%02d:00", op, e.Time.In(r.Zone).Format("15:04"), r.Hours[0], r.Hours[1])})
			}
		}
		if data.SQL == "" {
			break
		}
		es, err := m.idx.Query(ctx, index.Filter{Operator: op, Dataset: data.Dataset, Kind: "job.submitted", From: e.Time.Add(-r.ProbesIn), To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		shape := Shape(data.SQL)
		var same []int64
		for _, s := range es {
			var d struct {
				SQL string `json:"sql"`
			}
			if json.Unmarshal(s.Data, &d) == nil && Shape(d.SQL) == shape {
				same = append(same, s.Seq)
			}
		}
		if len(same) >= r.Probes {
			out = append(out, Alert{Rule: "probing", Operator: op, Dataset: data.Dataset, Entries: same,
				Message: fmt.Sprintf("%s submitted %d queries of the same shape on %s within %s, differing only in constants: possible probing for individuals", op, len(same), data.Dataset, r.ProbesIn)})
		}
	case "job.held":
		op, ds, err := m.about(ctx, e)
		if err != nil {
			return nil, err
		}
		for _, reason := range data.Release.Reasons {
			if reason.Code == "differencing" {
				out = append(out, Alert{Rule: "differencing", Operator: op, Dataset: ds, Entries: []int64{e.Seq},
					Message: fmt.Sprintf("a result of %s was held because, combined with an earlier release, it would isolate fewer people than the threshold", op)})
			}
		}
		es, err := m.idx.Query(ctx, index.Filter{Operator: op, Decision: index.Held, From: e.Time.Add(-r.HoldsIn), To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		if len(es) >= r.Holds {
			out = append(out, Alert{Rule: "repeated_holds", Operator: op, Dataset: ds, Entries: seqsOf(es),
				Message: fmt.Sprintf("%d results of %s were held for disclosure within %s", len(es), op, r.HoldsIn)})
		}
	}
	return out, nil
}

// about returns the operator and dataset of a job entry, from the job's
// submission.
func (m *Monitor) about(ctx context.Context, e audit.Entry) (string, string, error) {
	id, ok := strings.CutPrefix(e.Subject, "job/")
	if !ok {
		return e.Principal, "", nil
	}
	var job int64
	fmt.Sscan(id, &job)
	es, err := m.idx.Query(ctx, index.Filter{Job: job, Kind: "job.submitted", Limit: 1})
	if err != nil {
		return "", "", fmt.Errorf("alerts: %w", err)
	}
	if len(es) == 0 {
		return e.Principal, "", nil
	}
	var d struct {
		Dataset string `json:"dataset"`
	}
	json.Unmarshal(es[0].Data, &d)
	return es[0].Principal, d.Dataset, nil
}

func seqsOf(es []audit.Entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

var (
	stringLiteral = regexp.MustCompile(`'(?:[^']|'')*'`)
	numberLiteral = regexp.MustCompile(`\b\d+(?:\.\d+)?\b`)
	space         = regexp.MustCompile(`\s+`)
)

// Shape is a query with its constants replaced by ?, its case and spacing
// normalised: two queries with the same shape ask the same question of
// different values.
func Shape(sql string) string {
	s := stringLiteral.ReplaceAllString(sql, "?")
	s = numberLiteral.ReplaceAllString(s, "?")
	s = space.ReplaceAllString(strings.ToLower(strings.TrimSpace(s)), " ")
	return s
}
