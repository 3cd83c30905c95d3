package operators

import (
	"fmt"
	"strings"
	"time"
)

// Zone is the platform's civil time zone (China Standard Time, no daylight
// saving): dates in terms and deadlines are days in this zone.
var Zone = time.FixedZone("CST", 8*3600)

// DateLayout is how dates are written.
const DateLayout = "2006-01-02"

// parseStart reads the first instant of a term: a date (its midnight in
// Zone) or an RFC 3339 time.
func parseStart(field, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(DateLayout, s, Zone); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, inputErrorf("%s %q is neither a date like 2027-12-31 nor a time like 2027-12-31T18:00:00+08:00", field, s)
}

// parseEnd reads the end of a term: a date means the whole day is covered
// (the term ends at the next midnight in Zone); an RFC 3339 time is the
// first instant no longer covered.
func parseEnd(field, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(DateLayout, s, Zone); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, inputErrorf("%s %q is neither a date like 2027-12-31 (covered through that day) nor a time like 2027-12-31T18:00:00+08:00", field, s)
}

// Term is a period [From, Until).
type Term struct {
	From  time.Time `json:"valid_from"`
	Until time.Time `json:"valid_until"` // the first instant no longer covered
}

// describe shows the term in Zone. (Not String: Agreement embeds Term, and
// would print as its term alone.)
func (t Term) describe() string {
	return fmt.Sprintf("%s to %s", t.From.In(Zone).Format("2006-01-02 15:04"), t.Until.In(Zone).Format("2006-01-02 15:04"))
}

// Covers reports whether instant at lies in the term.
func (t Term) Covers(at time.Time) bool { return !at.Before(t.From) && at.Before(t.Until) }

// longerThanYears reports whether the term runs beyond n years from its start.
func (t Term) longerThanYears(n int) bool {
	return t.Until.After(t.From.In(Zone).AddDate(n, 0, 0))
}

// parseTerm reads a requested term; an empty from means now.
func parseTerm(now time.Time, from, until string) (Term, error) {
	t := Term{From: now}
	var err error
	if strings.TrimSpace(from) != "" {
		if t.From, err = parseStart("valid_from", from); err != nil {
			return Term{}, err
		}
	}
	if strings.TrimSpace(until) == "" {
		return Term{}, inputErrorf("no valid_until given; every agreement ends, name its last day like 2027-12-31")
	}
	if t.Until, err = parseEnd("valid_until", until); err != nil {
		return Term{}, err
	}
	if !t.Until.After(now) {
		return Term{}, inputErrorf("valid_until %s is in the past", until)
	}
	if !t.Until.After(t.From) {
		return Term{}, inputErrorf("valid_until %s is not after valid_from %s", until, t.From.In(Zone).Format(time.RFC3339))
	}
	return t, nil
}

// addWorkingDays returns the end of the n-th working day (Monday to Friday,
// in Zone) after t: the deadline for an answer due within n working days.
// Public holidays are not known to the platform and count as working days.
func addWorkingDays(t time.Time, n int) time.Time {
	day := t.In(Zone)
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, Zone)
	for n > 0 {
		day = day.AddDate(0, 0, 1)
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n--
		}
	}
	return day.AddDate(0, 0, 1) // the end of that day
}
