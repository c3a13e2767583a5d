package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// store is what the stand-in worker answers from.
type store struct {
	variables   map[string]string
	connections map[string]protocol.ConnectionResult
	xcoms       map[string]any // task_id/key
}

// result is what one run of the binary told the stand-in worker.
type result struct {
	terminal protocol.Message
	requests []protocol.Message
	logs     string
	output   string
	err      error
}

// runTask starts the gotasks binary for task against a stand-in worker on
// real sockets and waits for it to exit. opts adjust the StartupDetails.
func runTask(t *testing.T, bin string, codec protocol.Codec, task string, s store, params map[string]any, viaEnv bool, opts ...func(*protocol.StartupDetails)) result {
	t.Helper()
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

	var res result
	var wg sync.WaitGroup
	var logBuf strings.Builder
	wg.Add(2)
	go func() {
		defer wg.Done()
		c, err := logs.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			logBuf.Write(sc.Bytes())
			logBuf.WriteByte('\n')
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
		sd := protocol.StartupDetails{
			TI:        protocol.TaskInstance{ID: "ti-" + task, DagID: "etl", TaskID: task, RunID: "r1", MapIndex: -1, TryNumber: 1},
			Context:   protocol.RunContext{MaxTries: 1, Queue: "go", Entrypoint: task, Params: params},
			StartDate: time.Now().UTC().Format(time.RFC3339Nano),
		}
		for _, o := range opts {
			o(&sd)
		}
		if err := conn.WriteResponse(0, sd, nil); err != nil {
			t.Error(err)
			return
		}
		for {
			req, err := conn.ReadRequest()
			if err != nil {
				return
			}
			res.requests = append(res.requests, req.Msg)
			var msg protocol.Message = protocol.OKResponse{}
			var errResp *protocol.ErrorResponse
			switch m := req.Msg.(type) {
			case protocol.SucceedTask, protocol.TaskState, protocol.RetryTask, protocol.DeferTask:
				res.terminal = m
			case protocol.GetVariable:
				if v, ok := s.variables[m.Key]; ok {
					msg = protocol.VariableResult{Key: m.Key, Value: v}
				} else {
					msg, errResp = nil, &protocol.ErrorResponse{Error: "not_found", Detail: map[string]any{"message": "variable " + m.Key + " not found"}}
				}
			case protocol.GetConnection:
				if v, ok := s.connections[m.ConnID]; ok {
					msg = v
				} else {
					msg, errResp = nil, &protocol.ErrorResponse{Error: "not_found", Detail: map[string]any{"message": "connection " + m.ConnID + " not found"}}
				}
			case protocol.GetXCom:
				msg = protocol.XComResult{Key: m.Key, Value: s.xcoms[m.TaskID+"/"+m.Key]}
			}
			if err := conn.WriteResponse(req.ID, msg, errResp); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	env := []string{"TASKWIRE_CODEC=" + codec.String()}
	var args []string
	if viaEnv {
		env = append(env, "TASKWIRE_COMM_ADDR="+comm.Addr().String(), "TASKWIRE_LOGS_ADDR="+logs.Addr().String())
	} else {
		args = []string{"--comm", comm.Addr().String(), "--logs", logs.Addr().String()}
	}
	res.output, res.err = testbin.Run(ctx, bin, env, args...)
	comm.Close()
	logs.Close()
	wg.Wait()
	res.logs = logBuf.String()
	return res
}

func TestTasks(t *testing.T) {
	bin := testbin.MustBuild(t, "./examples/gotasks")
	full := store{
		variables:   map[string]string{"greeting": "hello taskwire"},
		connections: map[string]protocol.ConnectionResult{"db": {ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Login: "app", Password: "s3cret"}},
		xcoms:       map[string]any{"push/value": int64(42)},
	}
	empty := store{}
	tests := []struct {
		name   string
		task   string
		store  store
		params map[string]any
		check  func(t *testing.T, r result)
	}{
		{"noop", "noop", empty, nil, succeeded},
		{"fail", "fail", empty, nil, retried("failing on purpose")},
		{"push", "push", empty, nil, func(t *testing.T, r result) {
			succeeded(t, r)
			if x, ok := r.requests[0].(protocol.SetXCom); !ok || x.Key != "value" || x.Value != int64(42) {
				t.Errorf("first request %#v, want SetXCom value=42", r.requests[0])
			}
			logged("pushed xcom")(t, r)
		}},
		{"pull", "pull", full, nil, func(t *testing.T, r result) {
			succeeded(t, r)
			logged(`"value":42`)(t, r)
		}},
		{"pull_nothing", "pull", empty, nil, failed("want 42")},
		{"read_config", "read_config", full, nil, func(t *testing.T, r result) {
			succeeded(t, r)
			logged("hello taskwire", "db.internal")(t, r)
			if strings.Contains(r.logs, "s3cret") {
				t.Error("the password was logged")
			}
		}},
		{"read_config_missing", "read_config", empty, nil, retried("greeting")},
		{"sleep", "sleep", empty, map[string]any{"seconds": 0.01}, succeeded},
		{"panic", "panic", empty, nil, retried("panic: panicking on purpose")},
		{"unknown", "nope", empty, nil, failed(`no task "nope"`)},
	}
	for _, codec := range []protocol.Codec{protocol.CodecMsgpack, protocol.CodecJSON} {
		for i, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				r := runTask(t, bin, codec, tt.task, tt.store, tt.params, i%2 == 1)
				if r.err != nil {
					t.Errorf("exit: %v\n%s", r.err, r.output)
				}
				tt.check(t, r)
			})
		}
	}
}

func succeeded(t *testing.T, r result) {
	t.Helper()
	if _, ok := r.terminal.(protocol.SucceedTask); !ok {
		t.Errorf("terminal %#v, want SucceedTask\nlogs:\n%s", r.terminal, r.logs)
	}
}

func retried(reason string) func(*testing.T, result) {
	return func(t *testing.T, r result) {
		t.Helper()
		if m, ok := r.terminal.(protocol.RetryTask); !ok || !strings.Contains(m.Reason, reason) {
			t.Errorf("terminal %#v, want RetryTask with %q", r.terminal, reason)
		}
	}
}

func failed(reason string) func(*testing.T, result) {
	return func(t *testing.T, r result) {
		t.Helper()
		if m, ok := r.terminal.(protocol.TaskState); !ok || m.State != "failed" || !strings.Contains(m.Reason, reason) {
			t.Errorf("terminal %#v, want TaskState failed with %q", r.terminal, reason)
		}
	}
}

func logged(want ...string) func(*testing.T, result) {
	return func(t *testing.T, r result) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(r.logs, w) {
				t.Errorf("logs lack %q:\n%s", w, r.logs)
			}
		}
		for _, line := range strings.Split(strings.TrimSpace(r.logs), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["timestamp"] == nil || rec["level"] == nil || rec["event"] == nil {
				t.Errorf("log line %q lacks timestamp, level or event (%v)", line, err)
			}
		}
	}
}
