package worker

import (
	"encoding/json"
	"testing"
)

// Secrets are known by name as Airflow's masker knows them: a variable or
// a connection extra field whose name holds a sensitive word is masked,
// others are not.
func TestNamedMasks(t *testing.T) {
	t.Parallel()
	l := &taskLog{}
	l.addNamedMask("service_api_key", "k-value-1")
	l.addNamedMask("greeting", "hello world")
	l.addNamedMask("extra", map[string]any{
		"region":        "eu-1",
		"Auth_Token":    "t-value-2",
		"credentials":   map[string]any{"private_key": "pk-value-3", "user": "bob"},
		"client_secret": []any{"s-value-4", map[string]any{"nested": "s-value-5"}},
		"port":          5432,
	})
	for in, want := range map[string]string{
		"key k-value-1 token t-value-2":             "key *** token ***",
		"pk pk-value-3 secrets s-value-4 s-value-5": "pk *** secrets *** ***",
		"hello world from bob in eu-1":              "hello world from bob in eu-1",
	} {
		if got := l.maskString(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// A worker or output line is encoded by hand: the same bytes as
// json.Marshal of its map, whatever its event holds.
func TestEncodeLineMatchesJSON(t *testing.T) {
	t.Parallel()
	for _, event := range []string{
		"", "starting try 1 on host h", `quote " and \ backslash`, "tab\tnew\nline\r",
		"<html> & more", "\x00\x1f\x7f", "é ünïcode ✓", "bad utf8 \xff\xfe", "line sep \u2028 \u2029",
	} {
		want, err := json.Marshal(map[string]any{"timestamp": "2026-12-07T11:00:00.123456789Z", "level": "info", "event": event, "logger": "stdout"})
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeLine("info", event, "stdout", "2026-12-07T11:00:00.123456789Z"); string(got) != string(want) {
			t.Errorf("encodeLine(%q) = %s, want %s", event, got, want)
		}
	}
}

func FuzzEncodeLine(f *testing.F) {
	f.Add("info", "event <&> \"q\"", "worker")
	f.Fuzz(func(t *testing.T, level, event, logger string) {
		want, err := json.Marshal(map[string]any{"timestamp": "ts", "level": level, "event": event, "logger": logger})
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeLine(level, event, logger, "ts"); string(got) != string(want) {
			t.Errorf("encodeLine = %s, want %s", got, want)
		}
	})
}

// BenchmarkEncodeLine: a worker line by hand and, for comparison, as the
// map json.Marshal encoded before (go test -run '^$' -bench EncodeLine ./worker/).
func BenchmarkEncodeLine(b *testing.B) {
	const ts, event = "2026-12-07T11:00:00.123456789Z", "try 1 finished: success"
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = encodeLine("info", event, "worker", ts)
		}
	})
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_, _ = json.Marshal(map[string]any{"timestamp": ts, "level": "info", "event": event, "logger": "worker"})
		}
	})
}
