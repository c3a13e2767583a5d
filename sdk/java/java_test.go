// Package java_test builds and tests the Java task SDK (sdk/java) and the
// example Java runtime (examples/javatasks) with the JDK: one javac run
// compiles them with the Java tests; the Java test runner then checks the
// JSON codec, the golden frames of the protocol package and frames and
// values Go writes here, and the runtime against an in-process fake worker;
// and the example runtime is run as a process against a stand-in worker
// that speaks the Go protocol package. A JDK 17 or newer (javac and java on
// PATH) is required: without one the tests fail rather than skip.
package java_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/runtimetest"
	"github.com/taskwire/taskwire/protocol"
)

// buildDir is the directory build compiled into, removed by TestMain.
var buildDir string

// build compiles the SDK, its tests and the example runtime once per test
// process and returns the classes directory.
var build = sync.OnceValues(func() (string, error) {
	javac, err := exec.LookPath("javac")
	if err != nil {
		return "", fmt.Errorf("javac not found on PATH: the Java SDK needs a JDK 17 or newer (%v)", err)
	}
	dir, err := os.MkdirTemp("", "taskwire-java-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	classes := filepath.Join(dir, "classes")
	var srcs []string
	for _, root := range []string{"src", "test", filepath.Join("..", "..", "examples", "javatasks")} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".java") {
				srcs = append(srcs, path)
			}
			return err
		})
		if err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-encoding", "UTF-8", "--release", "17", "-Xlint:all", "-d", classes}, srcs...)
	out, err := exec.CommandContext(ctx, javac, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("javac: %v\n%s", err, out)
	}
	return classes, nil
})

func classes(t *testing.T) string {
	t.Helper()
	dir, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func javaBin(t *testing.T) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("java not found on PATH: the Java SDK needs a JDK 17 or newer (%v)", err)
	}
	return java
}

// TestJavaSDK runs the Java test runner: the codec, the golden frames and
// the vectors written here, and the runtime against a fake worker.
func TestJavaSDK(t *testing.T) {
	cls := classes(t)
	java := javaBin(t)
	vectors := t.TempDir()
	writeVectors(t, vectors)
	golden, err := filepath.Abs(filepath.Join("..", "..", "protocol", "testdata", "json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-cp", cls, "io.taskwire.sdk.SdkTests", "--golden", golden, "--vectors", vectors)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Java tests failed: %v\n%s", err, out)
	}
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if !strings.Contains(last, " passed, 0 failed") {
		t.Fatalf("unexpected summary %q\n%s", last, out)
	}
	t.Log(last)
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

type runOpts struct {
	classes    string // the class directory; the shared build's when ""
	params     map[string]any
	nextMethod string
	nextKwargs map[string]any
	unix       bool
	viaEnv     bool
}

// runExample starts `java -cp CLASSES Tasks` for task against a stand-in
// worker that speaks the protocol package's JSON codec on real sockets, and
// waits for it to exit.
func runExample(t *testing.T, task string, s runtimetest.Store, o runOpts) runtimetest.Result {
	t.Helper()
	cls := o.classes
	if cls == "" {
		cls = classes(t)
	}
	java := javaBin(t)
	return runtimetest.Run(t, runtimetest.Config{
		Codec: protocol.CodecJSON,
		Startup: protocol.StartupDetails{
			TI:         protocol.TaskInstance{ID: "ti-" + task, DagID: "etl", TaskID: task, RunID: "r1", MapIndex: -1, TryNumber: 1},
			Context:    protocol.RunContext{MaxTries: 1, Queue: "java", Entrypoint: task, Params: o.params},
			NextMethod: o.nextMethod, NextKwargs: o.nextKwargs,
			StartDate: time.Now().UTC().Format(time.RFC3339Nano),
		},
		Store:   s,
		Unix:    o.unix,
		Timeout: time.Minute,
		Run: func(ctx context.Context, comm, logs string) (string, error) {
			cmd := exec.CommandContext(ctx, java, "-cp", cls, "Tasks")
			cmd.Env = append(os.Environ(), "TASKWIRE_CODEC=json")
			if o.viaEnv {
				cmd.Env = append(cmd.Env, "TASKWIRE_COMM_ADDR="+comm, "TASKWIRE_LOGS_ADDR="+logs)
			} else {
				cmd.Args = append(cmd.Args, "--comm", comm, "--logs", logs)
			}
			out, err := cmd.CombinedOutput()
			return string(out), err
		},
	})
}

// pushed checks that XCom key was pushed with want.
func pushed(key string, want any) runtimetest.Check {
	return func(t *testing.T, r runtimetest.Result) {
		t.Helper()
		for _, m := range r.Requests {
			if x, ok := m.(protocol.SetXCom); ok && x.Key == key {
				if !reflect.DeepEqual(x.Value, want) {
					t.Errorf("XCom %s = %#v, want %#v", key, x.Value, want)
				}
				if x.DagID != "etl" || x.RunID != "r1" || x.MapIndex == nil || *x.MapIndex != -1 {
					t.Errorf("XCom %s pushed as %#v", key, x)
				}
				return
			}
		}
		t.Errorf("no XCom %s pushed in %#v", key, r.Requests)
	}
}

// TestExampleTasks runs examples/javatasks as a worker would, against the
// Go protocol package: what Java writes must decode strictly on the Go side.
func TestExampleTasks(t *testing.T) {
	full := runtimetest.Store{
		Variables:   map[string]string{"greeting": "hello taskwire"},
		Connections: map[string]protocol.ConnectionResult{"db": {ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Login: "app", Password: "s3cret"}},
		XComs:       map[string]any{"push/value": int64(42), "transform/return_value": map[string]any{"rows": int64(3)}, "other/return_value": "x"},
	}
	event := map[string]any{"fired_at": "2026-11-22T08:00:01Z", "n": int64(3)}
	tests := []struct {
		name  string
		task  string
		store runtimetest.Store
		opts  runOpts
		check runtimetest.Check
	}{
		{"noop", "noop", runtimetest.Store{}, runOpts{}, runtimetest.All(runtimetest.Succeeded, runtimetest.Logged(`"event":"nothing to do"`, `"logger":"task"`))},
		{"noop_env_unix", "noop", runtimetest.Store{}, runOpts{unix: true, viaEnv: true}, runtimetest.Succeeded},
		{"read_config", "read_config", full, runOpts{unix: true}, runtimetest.All(runtimetest.Succeeded, pushed("greeting", "hello taskwire"),
			runtimetest.Logged("hello taskwire", "db.internal", `"port":5432`), func(t *testing.T, r runtimetest.Result) {
				if strings.Contains(r.Logs, "s3cret") {
					t.Error("the password was logged")
				}
			})},
		{"read_config_missing", "read_config", runtimetest.Store{}, runOpts{}, runtimetest.Retried("not_found: variable greeting not found")},
		{"push", "push", runtimetest.Store{}, runOpts{}, runtimetest.All(runtimetest.Succeeded, pushed("value", int64(42)), pushed("return_value", int64(42)), runtimetest.Logged("pushed xcom"))},
		{"pull", "pull", full, runOpts{}, runtimetest.All(runtimetest.Succeeded, runtimetest.Logged(`"value":42`))},
		{"pull_nothing", "pull", runtimetest.Store{}, runOpts{}, runtimetest.Failed("want 42")},
		{"fail", "fail", runtimetest.Store{}, runOpts{}, runtimetest.All(runtimetest.Retried("java.lang.IllegalStateException: failing on purpose"),
			runtimetest.Logged(`"level":"error"`, "\\tat Tasks."))},
		{"wait", "wait", runtimetest.Store{}, runOpts{params: map[string]any{"seconds": 2.5}}, deferred(2.5)},
		{"wait_default", "wait", runtimetest.Store{}, runOpts{}, deferred(1)},
		{"wait_bad_seconds", "wait", runtimetest.Store{}, runOpts{params: map[string]any{"seconds": "soon"}}, runtimetest.Failed("params.seconds")},
		{"wait_resume", "wait", runtimetest.Store{}, runOpts{nextMethod: "resume", nextKwargs: map[string]any{"deferred_at": "x", "event": event}},
			runtimetest.All(runtimetest.Succeeded, pushed("return_value", event), runtimetest.Logged(`"event":"resumed"`, `"fired_at":"2026-11-22T08:00:01Z"`))},
		{"wait_trigger_failed", "wait", runtimetest.Store{}, runOpts{nextMethod: "__fail__", nextKwargs: map[string]any{"error": "trigger timeout after 2s"}},
			runtimetest.Retried("trigger timeout after 2s")},
		{"load", "load", full, runOpts{}, runtimetest.All(runtimetest.Succeeded, pushed("return_value", `loaded {"rows":3}`), runtimetest.Logged(`"event":"loaded"`))},
		{"load_from", "load", full, runOpts{params: map[string]any{"from_task": "other"}}, pushed("return_value", "loaded x")},
		{"unknown", "nope", runtimetest.Store{}, runOpts{}, runtimetest.Failed(`no task "nope"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runExample(t, tt.task, tt.store, tt.opts)
			if r.Err != nil {
				t.Errorf("exit: %v\n%s", r.Err, r.Output)
			}
			tt.check(t, r)
		})
	}
}

func deferred(seconds float64) runtimetest.Check {
	return func(t *testing.T, r runtimetest.Result) {
		t.Helper()
		d, ok := r.Terminal.(protocol.DeferTask)
		if !ok {
			t.Fatalf("terminal %#v, want DeferTask\nlogs:\n%s", r.Terminal, r.Logs)
		}
		var delta float64
		switch v := d.TriggerKwargs["delta"].(type) {
		case int64:
			delta = float64(v)
		case float64:
			delta = v
		}
		if d.Classpath != "timedelta" || delta != seconds || len(d.TriggerKwargs) != 1 || d.TriggerTimeout != "" || d.NextMethod != "resume" {
			t.Errorf("DeferTask %#v, want timedelta delta %v resuming at resume", d, seconds)
		}
		at, err := time.Parse(time.RFC3339, fmt.Sprint(d.NextKwargs["deferred_at"]))
		if err != nil || time.Since(at) > time.Minute {
			t.Errorf("next_kwargs %#v: deferred_at is not now (%v)", d.NextKwargs, err)
		}
		if len(r.Requests) != 1 {
			t.Errorf("requests %#v, want DeferTask alone", r.Requests)
		}
	}
}

// TestSourcePathBuild builds the example as the README says, naming only
// Tasks.java and letting javac find the SDK on its source path, and runs a
// task with the result.
func TestSourcePathBuild(t *testing.T) {
	javac, err := exec.LookPath("javac")
	if err != nil {
		t.Fatalf("javac not found on PATH: the Java SDK needs a JDK 17 or newer (%v)", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, javac, "-encoding", "US-ASCII", "-d", dir, "--source-path", "src", filepath.Join("..", "..", "examples", "javatasks", "Tasks.java"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	r := runExample(t, "push", runtimetest.Store{}, runOpts{classes: dir})
	if r.Err != nil {
		t.Errorf("exit: %v\n%s", r.Err, r.Output)
	}
	runtimetest.All(runtimetest.Succeeded, pushed("return_value", int64(42)))(t, r)
}

// TestExampleRefusesMsgpack checks the runtime stops at once, with exit code
// 2 and a clear message, when its queue is not configured with codec json.
func TestExampleRefusesMsgpack(t *testing.T) {
	cls := classes(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, javaBin(t), "-cp", cls, "Tasks", "--comm", "127.0.0.1:1")
	cmd.Env = append(os.Environ(), "TASKWIRE_CODEC=msgpack")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "codec: json") {
		t.Errorf("exit %v, output %q; want exit code 2 asking for codec: json", err, out)
	}
}
