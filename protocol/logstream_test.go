package protocol

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLogStreamHeaderGolden(t *testing.T) {
	path := filepath.Join("testdata", "log_stream_header.jsonl")
	h := LogStreamHeader{TIID: "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a", TryNumber: 2, Secret: goldenSecret}
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
	for _, bad := range []string{``, `{}`, `{"ti_id":"x"}`, `{"ti_id":"x","try_number":1}`, `{"ti_id":"x","secret":"s"}`,
		`{"ti_id":"","try_number":1,"secret":"s"}`, `[1]`} {
		if _, err := ParseLogStreamHeader([]byte(bad)); err == nil {
			t.Errorf("ParseLogStreamHeader(%q) = nil error", bad)
		}
	}
}

// The multiplexed log connection: its header and lines, as in
// testdata/log_stream_mux.txt (which the Python SDK's tests read too).
func TestLogStreamMuxGolden(t *testing.T) {
	path := filepath.Join("testdata", "log_stream_mux.txt")
	id := "0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a"
	var b []byte
	b = append(b, LogStreamHeader{Mux: true, Secret: goldenSecret}.MarshalLine()...)
	b = append(b, MuxLogLine(id, 2, []byte(`{"event":"hello","level":"info"}`))...)
	b = append(b, MuxLogLine("other", 1, []byte(`{"event":"tab\tinside","level":"warning"}`))...)
	b = append(b, MuxLogLine(id, 2, nil)...)
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("mux stream = %q, golden %q", b, want)
	}
	lines := bytes.Split(bytes.TrimSuffix(want, []byte("\n")), []byte("\n"))
	h, err := ParseLogStreamHeader(lines[0])
	if err != nil || !h.Mux || h.Secret != goldenSecret {
		t.Fatalf("parse mux header = %+v, %v", h, err)
	}
	type parsed struct {
		id   string
		try  int
		line string
	}
	wantLines := []parsed{{id, 2, `{"event":"hello","level":"info"}`}, {"other", 1, `{"event":"tab\tinside","level":"warning"}`}, {id, 2, ""}}
	for i, l := range lines[1:] {
		gotID, gotTry, gotLine, err := ParseMuxLogLine(l)
		if err != nil || (parsed{gotID, gotTry, string(gotLine)}) != wantLines[i] {
			t.Errorf("line %d = %q %d %q %v, want %+v", i, gotID, gotTry, gotLine, err, wantLines[i])
		}
	}
	for _, bad := range []string{``, `x`, "x\t1", "\t1\t{}", "x\t0\t{}", "x\tone\t{}"} {
		if _, _, _, err := ParseMuxLogLine([]byte(bad)); err == nil {
			t.Errorf("ParseMuxLogLine(%q) = nil error", bad)
		}
	}
	for _, bad := range []string{`{"mux":true,"ti_id":"x","secret":"s"}`, `{"mux":true}`, `{"mux":false}`} {
		if _, err := ParseLogStreamHeader([]byte(bad)); err == nil {
			t.Errorf("ParseLogStreamHeader(%q) = nil error", bad)
		}
	}
}

// FuzzParseMuxLogLine: any line is refused or split without a panic, and
// a line it splits is the one MuxLogLine writes back.
func FuzzParseMuxLogLine(f *testing.F) {
	f.Add([]byte("0195b3c2-7a1e-7c4d-9f1a-3b2c1d0e9f8a\t2\t{\"event\":\"hello\"}"))
	f.Add([]byte("x\t1\t"))
	f.Add([]byte("x\t+1\t{}"))
	f.Fuzz(func(t *testing.T, l []byte) {
		id, try, line, err := ParseMuxLogLine(l)
		if err != nil {
			return
		}
		if id == "" || try < 1 {
			t.Fatalf("%q split into %q %d", l, id, try)
		}
		back := MuxLogLine(id, try, line)
		if id, try2, line2, err := ParseMuxLogLine(back[:len(back)-1]); err != nil || try2 != try || !bytes.Equal(line2, line) || id == "" {
			t.Fatalf("%q: written back as %q, parsed %q %d %q %v", l, back, id, try2, line2, err)
		}
	})
}
