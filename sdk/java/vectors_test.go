package java_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

var update = flag.Bool("update", false, "rewrite src/test/resources/govectors")

// goVectors is where the Java tests (ProtocolTests) read the vectors Go wrote.
const goVectors = "src/test/resources/govectors"

// TestGoVectorsCurrent writes the vectors again with this Go and fails when
// they differ from the committed ones, which the JUnit tests check byte for
// byte: a change to the Go encoders (or to the vectors) must reach the Java
// SDK's tests. go test ./sdk/java -run TestGoVectorsCurrent -update rewrites them.
func TestGoVectorsCurrent(t *testing.T) {
	dir := t.TempDir()
	writeVectors(t, dir)
	if *update {
		if err := os.RemoveAll(goVectors); err != nil {
			t.Fatal(err)
		}
		if err := os.CopyFS(goVectors, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadDir(goVectors)
	if err != nil {
		t.Fatalf("%v: run go test ./sdk/java -run TestGoVectorsCurrent -update", err)
	}
	if names(got) != names(want) {
		t.Errorf("%s holds %s, want %s (go test ./sdk/java -run TestGoVectorsCurrent -update)", goVectors, names(got), names(want))
	}
	for _, e := range want {
		w, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		g, err := os.ReadFile(filepath.Join(goVectors, e.Name()))
		if err != nil {
			t.Errorf("%v (go test ./sdk/java -run TestGoVectorsCurrent -update)", err)
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s/%s differs from what Go writes now (go test ./sdk/java -run TestGoVectorsCurrent -update)", goVectors, e.Name())
		}
	}
}

func names(es []os.DirEntry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Name())
	}
	return strings.Join(s, " ")
}

// writeVectors writes what the Java tests re-encode and compare byte for
// byte: frames of the protocol package's JSON codec with tricky values,
// JSON values one a line (json.Marshal's HTML escaping and the protocol's
// encoder without it), and Go duration strings.
func writeVectors(t *testing.T, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	tricky := map[string]any{
		"html":     "<script>alert('x') && y > z</script>",
		"controls": "\x00\x01\b\f\n\r\t\x1f\x7f \"quoted\" back\\slash /",
		"unicode":  "héllo wörld ✓ 日本語 😀 \u2028\u2029 \ufeff",
		"floats":   []any{0.1, 0.25, 17.5, 1e-7, 1.5e-7, 1e21, 1e20, 123456789.125, 5e-324, math.MaxFloat64, -2.5e-8, 1.0 / 3},
		"ints":     []any{int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64), int64(5432)},
		"nested":   map[string]any{"a": []any{[]any{}, map[string]any{}, nil, true, false}, "b": map[string]any{"c": map[string]any{"d": "e"}}},
		"empty":    "",
	}
	mi := 3
	frames := []struct {
		name     string
		response bool
		id       int
		msg      protocol.Message
		err      *protocol.ErrorResponse
	}{
		{"SetXCom", false, 1, protocol.SetXCom{Key: "k<>&", Value: tricky, DagID: "d", RunID: "r", TaskID: "t", MapIndex: &mi}, nil},
		{"DeferTask", false, 2, protocol.DeferTask{Classpath: "timedelta", TriggerKwargs: map[string]any{"delta": 2.5, "when": "2026-11-22T08:00:00Z"},
			TriggerTimeout: (90 * time.Second).String(), NextMethod: "resume", NextKwargs: tricky}, nil},
		{"RetryTask", false, 3, protocol.RetryTask{Reason: "java.lang.IllegalStateException: <boom> & \"bang\"\n\tat Tasks.main(Tasks.java:1)"}, nil},
		{"GetXCom", false, 4, protocol.GetXCom{Key: "return_value", DagID: "d", RunID: "r", TaskID: "t"}, nil},
		{"StartupDetails", true, 0, protocol.StartupDetails{TI: protocol.TaskInstance{ID: "i", DagID: "d", TaskID: "t", RunID: "r", MapIndex: -1, TryNumber: 1},
			Context: protocol.RunContext{MaxTries: 1, Queue: "java", Entrypoint: "t", Params: tricky}, NextMethod: "resume",
			NextKwargs: map[string]any{"event": tricky}, StartDate: "2026-11-22T08:00:00.000001Z"}, nil},
		{"XComResult", true, 5, protocol.XComResult{Key: "k", Value: tricky}, nil},
		{"XComResultNull", true, 6, protocol.XComResult{Key: "k"}, nil},
		{"ConnectionResult", true, 7, protocol.ConnectionResult{ConnID: "c", ConnType: "http", Host: "h", Port: 443, Extra: tricky}, nil},
		{"ErrorResponse", true, 8, nil, &protocol.ErrorResponse{Error: "bad_request", Detail: map[string]any{"message": "<bad> & \"worse\""}}},
	}
	c := protocol.CodecJSON
	for _, f := range frames {
		var body []byte
		var err error
		kind := "request"
		if f.response {
			kind = "response"
			body, err = c.EncodeResponse(f.id, f.msg, f.err)
		} else {
			body, err = c.EncodeRequest(f.id, f.msg)
		}
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := protocol.WriteFrame(&buf, body); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, kind+"-"+f.name+".json.bin"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var values []any
	for range 1500 {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) || f == 0 {
			continue
		}
		values = append(values, f)
	}
	for range 1000 {
		values = append(values, r.Float64()*math.Pow(10, float64(r.IntN(44)-22)), float64(r.Int64N(1<<60))/float64(int64(1)<<r.IntN(30)))
	}
	var all strings.Builder
	for i := range 128 {
		all.WriteByte(byte(i))
		values = append(values, string(rune(i)))
	}
	values = append(values, all.String(), tricky, []any{tricky, tricky}, "😀\u00e9\u2028<&>", int64(math.MaxInt64), 1e300, -1e-300)

	var html, noHTML bytes.Buffer
	enc := json.NewEncoder(&noHTML)
	enc.SetEscapeHTML(false)
	for _, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		html.Write(b)
		html.WriteByte('\n')
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "values_html.jsonl"), html.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "values_nohtml.jsonl"), noHTML.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	var durs strings.Builder
	ds := []time.Duration{0, 1, 999, time.Microsecond, 1500, time.Millisecond, 1234567, time.Second, 90 * time.Second, time.Hour,
		26*time.Hour + 3*time.Minute + 4*time.Second + 5, math.MaxInt64, math.MinInt64, -1500 * time.Millisecond, -time.Hour}
	for range 300 {
		ds = append(ds, time.Duration(r.Int64N(1<<uint(r.IntN(62)+1))))
	}
	for _, d := range ds {
		fmt.Fprintf(&durs, "%d %s\n", int64(d), d)
	}
	if err := os.WriteFile(filepath.Join(dir, "durations.txt"), []byte(durs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
