package worker

import (
	"math"
	"strings"
	"time"
)

// Airflow's standard time triggers, which taskwire's triggerer runs as its
// built-in timer kinds. Their kwargs arrive in Airflow's serde form (a
// datetime is {"__classname__": "pendulum.datetime.DateTime", "__data__":
// {"timestamp": …}}, a timedelta {"__classname__": "datetime.timedelta",
// "__data__": seconds}); airflowTrigger rewrites them into the kind's own
// kwargs. With end_from_trigger=True, Airflow's trigger yields
// TaskSuccessEvent: the mapped trigger gets EndFromTrigger, and the
// executor ends the task as success at its event instead of resuming it.
// A Python-runtime trigger ends its task itself by yielding such an event.
var (
	airflowDateTimeTriggers = map[string]bool{
		"airflow.providers.standard.triggers.temporal.datetimetrigger": true,
		"airflow.triggers.temporal.datetimetrigger":                    true,
	}
	airflowTimeDeltaTriggers = map[string]bool{
		"airflow.providers.standard.triggers.temporal.timedeltatrigger": true,
		"airflow.triggers.temporal.timedeltatrigger":                    true,
	}
)

// airflowTrigger maps the trigger of an Airflow DeferTask to what taskwire's
// triggerer runs: a standard time trigger to the built-in timer kinds;
// any other class (provider triggers, a DAG folder's own) to the "airflow"
// kind, which a triggerer runs in its Python trigger runtime with Airflow's
// own trigger class and kwargs.
func airflowTrigger(classpath string, kwargs map[string]any) (cp string, kw map[string]any, endFromTrigger bool) {
	lower := strings.ToLower(strings.TrimSpace(classpath))
	end, _ := kwargs["end_from_trigger"].(bool)
	switch {
	case airflowDateTimeTriggers[lower]:
		if t, ok := serdeTime(kwargs["moment"]); ok {
			return "taskwire.triggers.DateTime", map[string]any{"moment": t.UTC().Format(time.RFC3339Nano)}, end
		}
	case airflowTimeDeltaTriggers[lower]:
		if d, ok := serdeDuration(kwargs["delta"]); ok {
			return "taskwire.triggers.TimeDelta", map[string]any{"delta": d.String()}, end
		}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	return "taskwire.triggers.Airflow", map[string]any{"classpath": classpath, "kwargs": kwargs}, false
}

// serdeData returns the __data__ of a serde value of one of classes.
func serdeData(v any, classes ...string) (any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	cn, _ := m["__classname__"].(string)
	for _, c := range classes {
		if cn == c {
			return m["__data__"], true
		}
	}
	return nil, false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, !math.IsNaN(n) && !math.IsInf(n, 0)
	case int64:
		return float64(n), true
	}
	return 0, false
}

// serdeTime reads a serde datetime, or an RFC 3339 string.
func serdeTime(v any) (time.Time, bool) {
	if s, ok := v.(string); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	d, ok := serdeData(v, "pendulum.datetime.DateTime", "datetime.datetime")
	if !ok {
		return time.Time{}, false
	}
	dm, _ := d.(map[string]any)
	ts, ok := number(dm["timestamp"])
	if !ok {
		return time.Time{}, false
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC(), true
}

// serdeDuration reads a serde timedelta (seconds), or a number of seconds.
func serdeDuration(v any) (time.Duration, bool) {
	if d, ok := serdeData(v, "datetime.timedelta"); ok {
		v = d
	}
	s, ok := number(v)
	if !ok || s < 0 || s > float64(math.MaxInt64)/1e9 {
		return 0, false
	}
	return time.Duration(s * float64(time.Second)), true
}
