package trigger

import (
	"strings"
	"time"
	"unicode"
)

// normalizeAirflow checks an "airflow" trigger: classpath a dotted Python
// path (module.Class), kwargs a map or absent (stored as {}).
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
	return map[string]any{"classpath": cp, "kwargs": args}, nil
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
