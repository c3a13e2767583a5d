package trigger

import (
	"fmt"
	"strings"
	"time"
)

// Kwargs of the timer kinds.
const (
	kwMoment = "moment"
	kwDelta  = "delta"
)

// naiveLayouts are times without a zone that a task may send by mistake
// (Python's datetime.isoformat of a naive datetime); they get a clearer
// error than a parse failure.
var naiveLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"}

// momentArg reads a point in time: an RFC 3339 string with an offset or
// Z (a space or lower-case t between date and time, and a lower-case z,
// are accepted too), or a time.Time (as msgpack decodes its timestamps).
// It returns the time in UTC.
func momentArg(kind, key string, v any) (time.Time, error) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		s := strings.TrimSpace(x)
		if len(s) > 10 && (s[10] == ' ' || s[10] == 't') {
			s = s[:10] + "T" + s[11:]
		}
		if rest, ok := strings.CutSuffix(s, "z"); ok {
			s = rest + "Z"
		}
		var err error
		t, err = time.Parse(time.RFC3339, s)
		if err != nil {
			for _, layout := range naiveLayouts {
				if _, nerr := time.Parse(layout, s); nerr == nil {
					return time.Time{}, kwargError(kind, key, v, "has no time zone (a naive time): give an offset or Z")
				}
			}
			return time.Time{}, kwargError(kind, key, v, "is not an RFC 3339 time like \"2026-01-02T03:04:05Z\"")
		}
	default:
		return time.Time{}, kwargError(kind, key, v, "is not an RFC 3339 time string")
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, kwargError(kind, key, v, "is out of range: in UTC its year is %d, not 0000-9999", y)
	}
	return t, nil
}

// formatMoment is the stored form of a moment.
func formatMoment(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func normalizeDateTime(kw map[string]any, _ time.Time) (map[string]any, error) {
	v := kw[kwMoment]
	if v == nil {
		return nil, missing(KindDateTime, kwMoment)
	}
	m, err := momentArg(KindDateTime, kwMoment, v)
	if err != nil {
		return nil, err
	}
	return map[string]any{kwMoment: formatMoment(m)}, nil
}

// normalizeTimeDelta fixes the end of the wait at now+delta. A "moment"
// already present (the stored form, normalized again) is kept, so the
// wait does not restart.
func normalizeTimeDelta(kw map[string]any, now time.Time) (map[string]any, error) {
	v := kw[kwDelta]
	if v == nil {
		return nil, missing(KindTimeDelta, kwDelta)
	}
	d, err := durationArg(KindTimeDelta, kwDelta, v)
	if err != nil {
		return nil, err
	}
	if d < 0 {
		return nil, kwargError(KindTimeDelta, kwDelta, v, "is negative")
	}
	var m time.Time
	if mv := kw[kwMoment]; mv != nil {
		if m, err = momentArg(KindTimeDelta, kwMoment, mv); err != nil {
			return nil, err
		}
	} else {
		m = now.Add(d).UTC()
		if y := m.Year(); y < 0 || y > 9999 {
			return nil, kwargError(KindTimeDelta, kwDelta, v, "is out of range: it ends in the year %d", y)
		}
	}
	return map[string]any{kwDelta: d.String(), kwMoment: formatMoment(m)}, nil
}

// timerTrigger is a started datetime or timedelta trigger: one runtime
// timer and no goroutine until it fires.
type timerTrigger struct {
	once
	moment string
	now    func() time.Time
	timer  *time.Timer
}

// startTimer starts a datetime trigger, or a timedelta one by its moment.
func startTimer(env *Env, kind string, kw map[string]any, fire func(Event)) (func(), error) {
	v := kw[kwMoment]
	if v == nil {
		if kind == KindTimeDelta {
			return nil, fmt.Errorf("%w: %s: kwarg %q is missing: Start takes a normalized trigger", ErrInvalid, kind, kwMoment)
		}
		return nil, missing(kind, kwMoment)
	}
	m, err := momentArg(kind, kwMoment, v)
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if f := formatMoment(m); !ok || s != f {
		s = f
	}
	tt := &timerTrigger{once: once{fn: fire}, moment: s, now: env.Now}
	tt.timer = time.AfterFunc(max(m.Sub(env.Now()), 0), tt.run)
	return tt.stop, nil
}

func (tt *timerTrigger) run() {
	tt.fire(Event{Payload: map[string]any{"moment": tt.moment, "fired_at": formatMoment(tt.now())}})
}

func (tt *timerTrigger) stop() {
	tt.cancel()
	tt.timer.Stop()
}
