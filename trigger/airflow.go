package trigger

import (
	"strings"
	"time"
	"unicode"

	"github.com/taskwire/taskwire/activity"
)

// normalizeAirflow checks an "airflow" trigger: classpath a dotted Python
// path (module.Class), kwargs a map or absent (stored as {}). A string
// kwarg rate_key (a trigger class that takes one, see the Python trigger
// runtime's rate_limit) must be a rate key; it is kept as the trigger's
// rate_key too, the key its rate_limit() takes by default; a rate_key
// beside classpath (not among the class's kwargs) is that key as well.
func normalizeAirflow(kw map[string]any, _ time.Time) (map[string]any, error) {
	cp, ok := kw["classpath"].(string)
	if !ok {
		if kw["classpath"] == nil {
			return nil, missing(KindAirflow, "classpath")
		}
		return nil, kwargError(KindAirflow, "classpath", kw["classpath"], "is not a string")
	}
	if !pythonPath(cp) {
		return nil, kwargError(KindAirflow, "classpath", cp, "is not a dotted Python path like pkg.module.Class")
	}
	args := map[string]any{}
	switch x := kw["kwargs"].(type) {
	case nil:
	case map[string]any:
		args = x
	default:
		return nil, kwargError(KindAirflow, "kwargs", x, "is not a map")
	}
	out := map[string]any{"classpath": cp, "kwargs": args}
	for _, src := range []struct {
		name string
		v    any
	}{{"kwargs.rate_key", args[kwRateKey]}, {kwRateKey, kw[kwRateKey]}} {
		if src.v == nil {
			continue
		}
		key, ok := src.v.(string)
		if !ok || activity.ValidateRateKey(key) != nil {
			return nil, kwargError(KindAirflow, src.name, src.v, "is not a rate key: 1-250 characters of [A-Za-z0-9_.:@-]")
		}
		out[kwRateKey] = key
	}
	return out, nil
}

// pythonPath reports whether s is module.Class: two or more identifiers
// joined by dots.
func pythonPath(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(s) > 500 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i, r := range p {
			if !(r == '_' || unicode.IsLetter(r) || i > 0 && unicode.IsDigit(r)) {
				return false
			}
		}
	}
	return true
}
