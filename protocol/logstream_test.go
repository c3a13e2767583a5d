package protocol

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLogStreamHeaderGolden(t *testing.T) {
	path := filepath.Join("testdata", "log_stream_header.jsonl")
	h := LogStreamHeader{TIID: "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", TryNumber: 2}
	if *update {
		if err := os.WriteFile(path, h.MarshalLine(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.MarshalLine(); !bytes.Equal(got, want) {
		t.Errorf("header = %q, golden %q", got, want)
	}
	back, err := ParseLogStreamHeader(bytes.TrimSuffix(want, []byte("\n")))
	if err != nil || back != h {
		t.Errorf("parse golden = %+v, %v; want %+v", back, err, h)
	}
	for _, bad := range []string{``, `{}`, `{"ti_id":"x"}`, `{"ti_id":"","try_number":1}`, `[1]`} {
		if _, err := ParseLogStreamHeader([]byte(bad)); err == nil {
			t.Errorf("ParseLogStreamHeader(%q) = nil error", bad)
		}
	}
}
