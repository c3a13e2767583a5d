package dag

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// RunIDScheduled is the run_id of the scheduled run at logical date t:
// derived from the date only, so every executor replica names it alike
// and a run is never created twice for one tick.
func RunIDScheduled(t time.Time) string { return "scheduled__" + t.UTC().Format(time.RFC3339) }

// Schedule is a DAG's parsed schedule.
type Schedule struct {
	cron     cron.Schedule
	interval time.Duration
	anchor   time.Time
}

// ParsedSchedule returns the DAG's schedule, nil when it has none. Cron
// expressions and presets are read in the DAG's timezone by
// robfig/cron; a fixed interval ("@every 30m") ticks at StartDate + k ×
// interval (at the Unix epoch when StartDate is unset), so every replica
// computes the same ticks.
func (d *DAG) ParsedSchedule() (*Schedule, error) {
	if d.Schedule == "" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(d.Schedule, "@every "); ok {
		iv, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("bad schedule %q: %w", d.Schedule, err)
		}
		if iv < time.Second {
			return nil, fmt.Errorf("bad schedule %q: an interval must be at least 1s", d.Schedule)
		}
		s := &Schedule{interval: iv, anchor: time.Unix(0, 0).UTC()}
		if d.StartDate != nil {
			s.anchor = d.StartDate.UTC()
		}
		return s, nil
	}
	c, err := d.ParseSchedule()
	if err != nil {
		return nil, err
	}
	return &Schedule{cron: c}, nil
}

// Next returns the first tick strictly after t.
func (s *Schedule) Next(t time.Time) time.Time {
	if s.interval > 0 {
		if t.Before(s.anchor) {
			return s.anchor
		}
		k := t.Sub(s.anchor)/s.interval + 1
		return s.anchor.Add(k * s.interval).UTC()
	}
	return s.cron.Next(t).UTC()
}

// errNoTick is returned when a schedule has no tick ahead.
var errNoTick = errors.New("schedule has no next tick")

// NextRun returns the logical date of the DAG's next scheduled run, given
// the latest scheduled one (zero if none) and now. Without catchup it is
// the first tick after now and after last; with catchup the first tick
// after last (or at or after StartDate), however long ago — the runs
// missed are then created one after another.
func (d *DAG) NextRun(last, now time.Time) (time.Time, error) {
	s, err := d.ParsedSchedule()
	if err != nil || s == nil {
		return time.Time{}, err
	}
	from := now
	switch {
	case d.Catchup && !last.IsZero():
		from = last
	case d.Catchup && d.StartDate != nil:
		from = d.StartDate.Add(-time.Nanosecond)
	case last.After(now):
		from = last
	}
	if d.StartDate != nil && from.Before(*d.StartDate) {
		from = d.StartDate.Add(-time.Nanosecond)
	}
	next := s.Next(from)
	if next.IsZero() {
		return time.Time{}, errNoTick
	}
	return next, nil
}
