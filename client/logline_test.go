package client

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want LogLine
	}{
		{"structlog", `{"timestamp":"2026-11-22T10:00:00.123456Z","level":"info","event":"x","logger":"airflow.task"}`,
			LogLine{Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC), Level: "info", Event: "x", Logger: "airflow.task"}},
		{"offset", `{"try":2,"timestamp":"2026-11-22T11:00:00+01:00","event":"y"}`,
			LogLine{Try: 2, Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), Event: "y"}},
		{"no_zone", `{"timestamp":"2026-11-22T10:00:00.5","event":"z"}`,
			LogLine{Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 5e8, time.UTC), Event: "z"}},
		{"epoch", `{"timestamp":1795000000,"event":"e"}`, LogLine{Timestamp: time.Unix(1795000000, 0), Event: "e"}},
		{"bad_timestamp", `{"timestamp":"yesterday","event":"e"}`, LogLine{Event: "e"}},
		{"non_string_event", `{"event":{"a":1},"level":null}`, LogLine{Event: `{"a":1}`}},
		{"array", `[1,2]`, LogLine{Event: `[1,2]`}},
		{"text", `plain text`, LogLine{Event: `plain text`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := parseLogLine([]byte(tc.in))
			if !got.Timestamp.Equal(tc.want.Timestamp) {
				t.Errorf("timestamp %v, want %v", got.Timestamp, tc.want.Timestamp)
			}
			if got.Try != tc.want.Try || got.Level != tc.want.Level || got.Event != tc.want.Event || got.Logger != tc.want.Logger {
				t.Errorf("parseLogLine = %+v, want %+v", got, tc.want)
			}
			if !json.Valid(got.Raw) {
				t.Errorf("Raw %q is not JSON", got.Raw)
			}
		})
	}
}

func FuzzParseLogLine(f *testing.F) {
	for _, s := range []string{
		`{"try":1,"timestamp":"2026-11-22T10:00:00Z","level":"info","event":"x","logger":"t"}`,
		`{"timestamp":1e300}`, `{"timestamp":-1}`, `{"try":"x"}`, `[]`, `"s"`, `plain`, `{"event":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l := parseLogLine(b)
		if !json.Valid(l.Raw) {
			t.Errorf("Raw %q is not JSON", l.Raw)
		}
	})
}
