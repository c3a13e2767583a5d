package python_test

// The Python task SDK (sdk/python) is tested from go test, so CI runs it:
// TestPythonSDK runs its unittest suite, and TestPythonRuntimeWithGoWorker
// drives the example runtime (examples/pytasks/tasks.py) with this
// repository's Go protocol codec as the worker, in both codecs.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// moduleRoot returns the directory of go.mod, walking up from here.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// python3 returns the interpreter's path. The SDK's tests are part of the
// suite: a machine without python3 fails them rather than skipping them.
func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to test the Python SDK: %v", err)
	}
	return p
}

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

func TestPythonSDK(t *testing.T) {
	root := moduleRoot(t)
	py := python3(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-m", "unittest", "discover", "-s", filepath.Join("sdk", "python", "tests"), "-v")
	cmd.Dir = root
	cmd.Env = pyEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest discover -s sdk/python/tests -v: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}

// pyResult is what one run of the example runtime told the Go worker.
type pyResult struct {
	requests []protocol.Message
	terminal protocol.Message
	logs     []map[string]any
	exitErr  error
	output   string
}

// pyStore answers requests.
type pyStore struct {
	variables   map[string]string
	connections map[string]protocol.ConnectionResult
	xcoms       map[string]any // task_id/key
}

// runPy runs examples/pytasks/tasks.py for one try against a worker made
// of protocol.Conn, on loopback TCP.
func runPy(t *testing.T, codec protocol.Codec, sd protocol.StartupDetails, st pyStore) pyResult {
	t.Helper()
	root := moduleRoot(t)
	py := python3(t)
	comm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer comm.Close()
	logs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	if st.xcoms == nil {
		st.xcoms = map[string]any{}
	}

	var res pyResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c, err := logs.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("log line %q is not JSON: %v", sc.Bytes(), err)
				continue
			}
			mu.Lock()
			res.logs = append(res.logs, rec)
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		c, err := comm.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		conn := protocol.NewConn(c, codec, 0)
		if err := conn.WriteResponse(0, sd, nil); err != nil {
			t.Errorf("send StartupDetails: %v", err)
			return
		}
		for want := 1; ; want++ {
			req, err := conn.ReadRequest()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("read request: %v", err)
				}
				return
			}
			if req.ID != want {
				t.Errorf("request id %d, want %d", req.ID, want)
			}
			mu.Lock()
			res.requests = append(res.requests, req.Msg)
			mu.Unlock()
			var msg protocol.Message = protocol.OKResponse{}
			var errResp *protocol.ErrorResponse
			switch m := req.Msg.(type) {
			case protocol.SucceedTask, protocol.RetryTask, protocol.TaskState, protocol.DeferTask:
				mu.Lock()
				res.terminal = m
				mu.Unlock()
			case protocol.GetVariable:
				if v, ok := st.variables[m.Key]; ok {
					msg = protocol.VariableResult{Key: m.Key, Value: v}
				} else {
					msg, errResp = nil, &protocol.ErrorResponse{Error: "not_found", Detail: map[string]any{"message": "variable " + m.Key + " not found"}}
				}
			case protocol.GetConnection:
				if c, ok := st.connections[m.ConnID]; ok {
					msg = c
				} else {
					msg, errResp = nil, &protocol.ErrorResponse{Error: "not_found"}
				}
			case protocol.SetXCom:
				st.xcoms[m.TaskID+"/"+m.Key] = m.Value
			case protocol.GetXCom:
				msg = protocol.XComResult{Key: m.Key, Value: st.xcoms[m.TaskID+"/"+m.Key]}
			}
			if err := conn.WriteResponse(req.ID, msg, errResp); err != nil {
				t.Errorf("answer %d: %v", req.ID, err)
				return
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join(root, "examples", "pytasks", "tasks.py"),
		"--comm", comm.Addr().String(), "--logs", logs.Addr().String(), "--codec", codec.String())
	cmd.Env = pyEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	res.exitErr = cmd.Run()
	res.output = out.String()
	comm.Close()
	logs.Close()
	wg.Wait()
	if res.exitErr != nil {
		t.Errorf("tasks.py %s: %v\n%s", sd.Context.Entrypoint, res.exitErr, res.output)
	}
	return res
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
				st := pyStore{}
				res := runPy(t, codec, startup("push", nil), st)
				if _, ok := res.terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.terminal, res.output)
				}
				want := []protocol.Message{
					protocol.SetXCom{Type: "SetXCom", Key: "value", Value: int64(42), DagID: "polyglot", RunID: "run-1", TaskID: "push", MapIndex: ptr(-1)},
					protocol.SetXCom{Type: "SetXCom", Key: "return_value", Value: int64(42), DagID: "polyglot", RunID: "run-1", TaskID: "push", MapIndex: ptr(-1)},
				}
				if !reflect.DeepEqual(res.requests[:2], want) {
					t.Errorf("requests %#v\nwant %#v", res.requests[:2], want)
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
				st := pyStore{
					variables: map[string]string{"greeting": "héllo taskwire"},
					connections: map[string]protocol.ConnectionResult{"db": {ConnID: "db", ConnType: "postgres", Host: "db.internal",
						Port: 5432, Login: "etl", Password: "s3cret", Extra: map[string]any{"sslmode": "require"}}},
					xcoms: map[string]any{},
				}
				res := runPy(t, codec, startup("read_config", nil), st)
				if _, ok := res.terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.terminal, res.output)
				}
				if got := st.xcoms["read_config/greeting"]; got != "héllo taskwire" {
					t.Errorf("xcom greeting = %v", got)
				}
				if r := findLog(res.logs, "read config"); r == nil || r["host"] != "db.internal" || r["port"] != float64(5432) {
					t.Errorf("log line %v", r)
				}
			})
			t.Run("fail", func(t *testing.T) {
				res := runPy(t, codec, startup("fail", nil), pyStore{})
				rt, ok := res.terminal.(protocol.RetryTask)
				if !ok || !strings.Contains(rt.Reason, "ValueError: failing on purpose") || rt.EndDate == "" {
					t.Fatalf("terminal %#v\n%s", res.terminal, res.output)
				}
			})
			t.Run("wait", func(t *testing.T) {
				res := runPy(t, codec, startup("wait", map[string]any{"seconds": 0.25}), pyStore{})
				want := protocol.DeferTask{Type: "DeferTask", Classpath: "timedelta", TriggerKwargs: map[string]any{"delta": 0.25}, NextMethod: "resume"}
				if !reflect.DeepEqual(res.terminal, want) {
					t.Fatalf("terminal %#v, want %#v\n%s", res.terminal, want, res.output)
				}
				sd := startup("wait", nil)
				sd.NextMethod = "resume"
				sd.NextKwargs = map[string]any{"event": map[string]any{"moment": "2026-11-22T08:00:01Z", "n": int64(3)}}
				st := pyStore{xcoms: map[string]any{}}
				res = runPy(t, codec, sd, st)
				if _, ok := res.terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.terminal, res.output)
				}
				if got := st.xcoms["wait/return_value"]; !reflect.DeepEqual(got, sd.NextKwargs["event"]) {
					t.Errorf("return_value %#v, want the event %#v", got, sd.NextKwargs["event"])
				}
			})
			t.Run("transform", func(t *testing.T) {
				st := pyStore{xcoms: map[string]any{"extract/value": int64(21)}}
				res := runPy(t, codec, startup("transform", map[string]any{"from_task": "extract"}), st)
				if _, ok := res.terminal.(protocol.SucceedTask); !ok {
					t.Fatalf("terminal %#v\n%s", res.terminal, res.output)
				}
				if got := st.xcoms["transform/return_value"]; got != int64(42) {
					t.Errorf("return_value %#v, want 42", got)
				}
				gx, ok := res.requests[0].(protocol.GetXCom)
				if !ok || gx.TaskID != "extract" || gx.Key != "value" || gx.DagID != "polyglot" || gx.RunID != "run-1" || gx.MapIndex != nil {
					t.Errorf("first request %#v", res.requests[0])
				}
			})
		})
	}
}

func ptr(n int) *int { return &n }
