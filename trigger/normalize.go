package trigger

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// kindDef is one built-in kind: the kwargs it takes and how to check them.
type kindDef struct {
	// keys are the kwargs the kind accepts; any other is an error.
	keys []string
	// normalize checks kw (already free of unknown keys) and returns the
	// stored kwargs.
	normalize func(kw map[string]any, now time.Time) (map[string]any, error)
}

// kinds maps each kind name to its definition.
var kinds = map[string]kindDef{
	KindDateTime:  {keys: []string{kwMoment}, normalize: normalizeDateTime},
	KindTimeDelta: {keys: []string{kwDelta, kwMoment}, normalize: normalizeTimeDelta},
	KindHTTP: {keys: []string{kwURL, kwMethod, kwStatus, kwBodyContains, kwBody, kwHeaders, kwInterval, kwRateKey},
		normalize: normalizeHTTP},
	KindFile:    {keys: []string{kwPath, kwInterval, kwRateKey}, normalize: normalizeFile},
	KindAirflow: {keys: []string{"classpath", "kwargs", kwRateKey}, normalize: normalizeAirflow},
	KindEvent:   {keys: []string{kwName}, normalize: normalizeEvent},
}

// kindOrder lists the kinds for error messages and docs.
var kindOrder = []string{KindDateTime, KindTimeDelta, KindHTTP, KindFile, KindEvent, KindAirflow}

// classpaths maps a lower-cased classpath to its kind.
var classpaths = map[string]string{
	KindDateTime:  KindDateTime,
	KindTimeDelta: KindTimeDelta,
	KindHTTP:      KindHTTP,
	KindFile:      KindFile,
	KindEvent:     KindEvent,
	KindAirflow:   KindAirflow,

	"taskwire.triggers.datetime":  KindDateTime,
	"taskwire.triggers.timedelta": KindTimeDelta,
	"taskwire.triggers.http":      KindHTTP,
	"taskwire.triggers.file":      KindFile,
	"taskwire.triggers.event":     KindEvent,
	"taskwire.triggers.airflow":   KindAirflow,

	"airflow.triggers.temporal.datetimetrigger":        KindDateTime,
	"airflow.triggers.temporal.timedeltatrigger":       KindTimeDelta,
	"airflow.triggers.file.filetrigger":                KindFile,
	"airflow.providers.http.triggers.http.httptrigger": KindHTTP,
}

// resolveKind returns the kind classpath names, ignoring case and
// surrounding space.
func resolveKind(classpath string) (string, error) {
	if k, ok := classpaths[strings.ToLower(strings.TrimSpace(classpath))]; ok {
		return k, nil
	}
	if strings.TrimSpace(classpath) == "" {
		return "", fmt.Errorf("%w: no classpath (want one of %s)", ErrInvalid, strings.Join(kindOrder, ", "))
	}
	return "", fmt.Errorf("%w: unknown classpath %s (want one of %s, or its taskwire.triggers.* or Airflow classpath)",
		ErrInvalid, show(classpath), strings.Join(kindOrder, ", "))
}

func normalize(t activity.Trigger, now time.Time) (activity.Trigger, error) {
	kind, err := resolveKind(t.Classpath)
	if err != nil {
		return activity.Trigger{}, err
	}
	if t.Timeout < 0 {
		return activity.Trigger{}, fmt.Errorf("%w: %s: timeout %s is negative", ErrInvalid, kind, t.Timeout.D())
	}
	def := kinds[kind]
	if err := checkKeys(kind, def.keys, t.Kwargs); err != nil {
		return activity.Trigger{}, err
	}
	kw, err := def.normalize(t.Kwargs, now)
	if err != nil {
		return activity.Trigger{}, err
	}
	t.Kind = kind
	t.Kwargs = kw
	return t, nil
}

// checkKeys fails on the first kwarg (in sorted order) not in keys.
func checkKeys(kind string, keys []string, kw map[string]any) error {
	for _, k := range slices.Sorted(maps.Keys(kw)) {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("%w: %s: unknown kwarg %s (want %s)", ErrInvalid, kind, show(k), strings.Join(slices.Sorted(slices.Values(keys)), ", "))
		}
	}
	return nil
}

// kwargError is the error for kwarg key of kind having the bad value v.
func kwargError(kind, key string, v any, format string, args ...any) error {
	return fmt.Errorf("%w: %s: kwarg %q %s %s", ErrInvalid, kind, key, show(v), fmt.Sprintf(format, args...))
}

// missing is the error for a required kwarg that is absent or null.
func missing(kind, key string) error {
	return fmt.Errorf("%w: %s: kwarg %q is required", ErrInvalid, kind, key)
}

// showMax bounds how much of a bad value an error message quotes.
const showMax = 120

// show renders a kwarg value for an error message: strings quoted, long
// values cut.
func show(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		if len(x) > showMax {
			return fmt.Sprintf("%q…", x[:showMax])
		}
		return fmt.Sprintf("%q", x)
	case nil:
		return "null"
	default:
		s = fmt.Sprintf("%v (%T)", x, x)
	}
	if len(s) > showMax {
		s = s[:showMax] + "…"
	}
	return s
}

// maxSeconds is the largest number of seconds a time.Duration holds.
const maxSeconds = float64(math.MaxInt64 / int64(time.Second))

// durationArg reads a duration kwarg: a Go duration string ("90s",
// "1h30m"), a time.Duration or activity.Duration, or a number of seconds
// (any integer or float type, or json.Number). Negative values are
// allowed here; callers bound them.
func durationArg(kind, key string, v any) (time.Duration, error) {
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, kwargError(kind, key, v, "is not a duration like \"90s\" or \"1h30m\" or a number of seconds")
		}
		return d, nil
	case time.Duration:
		return x, nil
	case activity.Duration:
		return x.D(), nil
	}
	f, ok := number(v)
	if !ok {
		return 0, kwargError(kind, key, v, "is not a duration like \"90s\" or \"1h30m\" or a number of seconds")
	}
	if math.IsNaN(f) || math.Abs(f) > maxSeconds {
		return 0, kwargError(kind, key, v, "is out of range for a number of seconds (at most %.0f)", maxSeconds)
	}
	if i, ok := integer(v); ok { // exact for whole seconds
		return time.Duration(i) * time.Second, nil
	}
	return time.Duration(math.Round(f * float64(time.Second))), nil
}

// intArg reads an integer kwarg given as any number type whose value is
// whole.
func intArg(kind, key string, v any) (int64, error) {
	if i, ok := integer(v); ok {
		return i, nil
	}
	f, ok := number(v)
	if !ok {
		return 0, kwargError(kind, key, v, "is not a number")
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, kwargError(kind, key, v, "is not a whole number")
	}
	return int64(f), nil
}

// integer returns v as an int64 when it is an integer type (or a
// json.Number holding one) that fits.
func integer(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	case json.Number:
		i, err := x.Int64()
		return i, err == nil
	}
	return 0, false
}

// number returns v as a float64 when it is any number type.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// stringArg reads a string kwarg.
func stringArg(kind, key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", kwargError(kind, key, v, "is not a string")
	}
	return s, nil
}

// intervalArg reads a poll interval kwarg, def when absent, at least
// minInterval.
func intervalArg(kind string, kw map[string]any, def time.Duration) (time.Duration, error) {
	v := kw[kwInterval]
	if v == nil {
		return def, nil
	}
	d, err := durationArg(kind, kwInterval, v)
	if err != nil {
		return 0, err
	}
	if d < minInterval {
		return 0, kwargError(kind, kwInterval, v, "is shorter than the minimum %s", minInterval)
	}
	return d, nil
}
