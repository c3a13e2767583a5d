// Package python_test: TestPythonRuntimeWithGoWorker drives the example runtime
// (examples/pytasks/tasks.py) with the installed Python SDK (the taskwire
// package in ./test.sh's venv, $TASKWIRE_TEST_PYTHON) against this
// repository's Go protocol codec as the worker, in both codecs. The SDK's
// own tests are pytest tests (sdk/python/tests), run by ./test.sh.
package python_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/runtimetest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
)

// pyEnv is the environment of the Python processes: no bytecode files in
// the repository, no worker addresses inherited.
func pyEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TASKWIRE_") || strings.HasPrefix(kv, "PYTHONDONTWRITEBYTECODE=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PYTHONDONTWRITEBYTECODE=1")
}

// pyResult is what one run of the example runtime told the Go worker.
type pyResult struct {
	runtimetest.Result
	logs []map[string]any // the log lines, decoded
}

// runPy runs examples/pytasks/tasks.py for one try against a worker made
// of protocol.Conn, on loopback TCP.
func runPy(t *testing.T, codec protocol.Codec, sd protocol.StartupDetails, st runtimetest.Store) pyResult {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	py := testbin.Python(t)
	r := runtimetest.Run(t, runtimetest.Config{
		Codec:   codec,
		Startup: sd,
		Store:   st,
		Run: func(ctx context.Context, comm, logs, secret string) (string, error) {
			cmd := exec.CommandContext(ctx, py, filepath.Join(root, "examples", "pytasks", "tasks.py"),
				"--comm", comm, "--logs", logs, "--codec", codec.String())
			cmd.Env = append(pyEnv(), runtimetest.SecretEnv(secret))
			out, err := cmd.CombinedOutput()
			return string(out), err
		},
	})
	if r.Err != nil {
		t.Errorf("tasks.py %s: %v\n%s", sd.Context.Entrypoint, r.Err, r.Output)
	}
	return pyResult{Result: r, logs: r.Records(t)}
}

func startup(task string, params map[string]any) protocol.StartupDetails {
	return protocol.StartupDetails{
		TI:        protocol.TaskInstance{ID: "ti-1", DagID: "polyglot", TaskID: task, RunID: "run-1", MapIndex: -1, TryNumber: 1},
		Context:   protocol.RunContext{MaxTries: 2, Queue: "python", Entrypoint: task, Params: params},
		StartDate: "2026-11-22T08:00:00Z",
	}
}

func findLog(logs []map[string]any, event string) map[string]any {
	for _, r := range logs {
		if r["event"] == event {
			return r
		}
	}
	return nil
}

func TestPythonRuntimeWithGoWorker(t *testing.T) {
	for _, codec := range []protocol.Codec{protocol.CodecMsgpack, protocol.CodecJSON} {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			t.Run("push", func(t *testing.T) {
				st := runtimetest.Store{}
				res := runPy(t, codec, startup("push", nil), st)
				if _, ok := res.Terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.Terminal, res.Output)
				}
				want := []protocol.Message{
					protocol.SetXCom{Type: "SetXCom", Key: "value", Value: int64(42), DagID: "polyglot", RunID: "run-1", TaskID: "push", MapIndex: ptr(-1)},
					protocol.SetXCom{Type: "SetXCom", Key: "return_value", Value: int64(42), DagID: "polyglot", RunID: "run-1", TaskID: "push", MapIndex: ptr(-1)},
				}
				if !reflect.DeepEqual(res.Requests[:2], want) {
					t.Errorf("requests %#v\nwant %#v", res.Requests[:2], want)
				}
				r := findLog(res.logs, "pushed xcom")
				if r == nil || r["logger"] != "task" || r["level"] != "info" || r["value"] != float64(42) {
					t.Errorf("log line %v in %v", r, res.logs)
				}
				if ts, _ := r["timestamp"].(string); ts != "" {
					if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
						t.Errorf("timestamp %q: %v", ts, err)
					}
				}
			})
			t.Run("read_config", func(t *testing.T) {
				st := runtimetest.Store{
					Variables: map[string]string{"greeting": "héllo taskwire"},
					Connections: map[string]protocol.ConnectionResult{"db": {ConnID: "db", ConnType: "postgres", Host: "db.internal",
						Port: 5432, Login: "etl", Password: "s3cret", Extra: map[string]any{"sslmode": "require"}}},
					XComs: map[string]any{},
				}
				res := runPy(t, codec, startup("read_config", nil), st)
				if _, ok := res.Terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.Terminal, res.Output)
				}
				if got := res.XComs["read_config/greeting"]; got != "héllo taskwire" {
					t.Errorf("xcom greeting = %v", got)
				}
				if r := findLog(res.logs, "read config"); r == nil || r["host"] != "db.internal" || r["port"] != float64(5432) {
					t.Errorf("log line %v", r)
				}
			})
			t.Run("fail", func(t *testing.T) {
				res := runPy(t, codec, startup("fail", nil), runtimetest.Store{})
				rt, ok := res.Terminal.(protocol.RetryTask)
				if !ok || !strings.Contains(rt.Reason, "ValueError: failing on purpose") || rt.EndDate == "" {
					t.Fatalf("terminal %#v\n%s", res.Terminal, res.Output)
				}
			})
			t.Run("wait", func(t *testing.T) {
				res := runPy(t, codec, startup("wait", map[string]any{"seconds": 0.25}), runtimetest.Store{})
				want := protocol.DeferTask{Type: "DeferTask", Classpath: "timedelta", TriggerKwargs: map[string]any{"delta": 0.25}, NextMethod: "resume"}
				if !reflect.DeepEqual(res.Terminal, want) {
					t.Fatalf("terminal %#v, want %#v\n%s", res.Terminal, want, res.Output)
				}
				sd := startup("wait", nil)
				sd.NextMethod = "resume"
				sd.NextKwargs = map[string]any{"event": map[string]any{"moment": "2026-11-22T08:00:01Z", "n": int64(3)}}
				st := runtimetest.Store{XComs: map[string]any{}}
				res = runPy(t, codec, sd, st)
				if _, ok := res.Terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.Terminal, res.Output)
				}
				if got := res.XComs["wait/return_value"]; !reflect.DeepEqual(got, sd.NextKwargs["event"]) {
					t.Errorf("return_value %#v, want the event %#v", got, sd.NextKwargs["event"])
				}
			})
			t.Run("transform", func(t *testing.T) {
				st := runtimetest.Store{XComs: map[string]any{"extract/value": int64(21)}}
				res := runPy(t, codec, startup("transform", map[string]any{"from_task": "extract"}), st)
				if _, ok := res.Terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.Terminal, res.Output)
				}
				if got := res.XComs["transform/return_value"]; got != int64(42) {
					t.Errorf("return_value %#v, want 42", got)
				}
				gx, ok := res.Requests[0].(protocol.GetXCom)
				if !ok || gx.TaskID != "extract" || gx.Key != "value" || gx.DagID != "polyglot" || gx.RunID != "run-1" || gx.MapIndex != nil {
					t.Errorf("first request %#v", res.Requests[0])
				}
			})
		})
	}
}

func ptr(n int) *int { return &n }
