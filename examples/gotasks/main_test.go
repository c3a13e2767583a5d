package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/runtimetest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// runTask starts the gotasks binary for task against a stand-in worker on
// real sockets and waits for it to exit. opts adjust the StartupDetails.
func runTask(t *testing.T, bin string, codec protocol.Codec, task string, s runtimetest.Store, params map[string]any, viaEnv bool, opts ...func(*protocol.StartupDetails)) runtimetest.Result {
	t.Helper()
	sd := protocol.StartupDetails{
		TI:        protocol.TaskInstance{ID: "ti-" + task, DagID: "etl", TaskID: task, RunID: "r1", MapIndex: -1, TryNumber: 1},
		Context:   protocol.RunContext{MaxTries: 1, Queue: "go", Entrypoint: task, Params: params},
		StartDate: time.Now().UTC().Format(time.RFC3339Nano),
	}
	for _, o := range opts {
		o(&sd)
	}
	return runtimetest.Run(t, runtimetest.Config{
		Codec:   codec,
		Startup: sd,
		Store:   s,
		Run: func(ctx context.Context, comm, logs, secret string) (string, error) {
			env := []string{"TASKWIRE_CODEC=" + codec.String(), runtimetest.SecretEnv(secret)}
			var args []string
			if viaEnv {
				env = append(env, "TASKWIRE_COMM_ADDR="+comm, "TASKWIRE_LOGS_ADDR="+logs)
			} else {
				args = []string{"--comm", comm, "--logs", logs}
			}
			return testbin.Run(ctx, bin, env, args...)
		},
	})
}

func TestTasks(t *testing.T) {
	bin := testbin.MustBuild(t, "./examples/gotasks")
	full := runtimetest.Store{
		Variables:   map[string]string{"greeting": "hello taskwire"},
		Connections: map[string]protocol.ConnectionResult{"db": {ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Login: "app", Password: "s3cret"}},
		XComs:       map[string]any{"push/value": int64(42)},
	}
	empty := runtimetest.Store{}
	tests := []struct {
		name   string
		task   string
		store  runtimetest.Store
		params map[string]any
		check  runtimetest.Check
	}{
		{"noop", "noop", empty, nil, runtimetest.Succeeded},
		{"fail", "fail", empty, nil, runtimetest.Retried("failing on purpose")},
		{"push", "push", empty, nil, func(t *testing.T, r runtimetest.Result) {
			runtimetest.Succeeded(t, r)
			if x, ok := r.Requests[0].(protocol.SetXCom); !ok || x.Key != "value" || x.Value != int64(42) {
				t.Errorf("first request %#v, want SetXCom value=42", r.Requests[0])
			}
			runtimetest.Logged("pushed xcom")(t, r)
		}},
		{"pull", "pull", full, nil, func(t *testing.T, r runtimetest.Result) {
			runtimetest.Succeeded(t, r)
			runtimetest.Logged(`"value":42`)(t, r)
		}},
		{"pull_nothing", "pull", empty, nil, runtimetest.Failed("want 42")},
		{"read_config", "read_config", full, nil, func(t *testing.T, r runtimetest.Result) {
			runtimetest.Succeeded(t, r)
			runtimetest.Logged("hello taskwire", "db.internal")(t, r)
			if strings.Contains(r.Logs, "s3cret") {
				t.Error("the password was logged")
			}
		}},
		{"read_config_missing", "read_config", empty, nil, runtimetest.Retried("greeting")},
		{"sleep", "sleep", empty, map[string]any{"seconds": 0.01}, runtimetest.Succeeded},
		{"panic", "panic", empty, nil, runtimetest.Retried("panic: panicking on purpose")},
		{"unknown", "nope", empty, nil, runtimetest.Failed(`no task "nope"`)},
	}
	for _, codec := range []protocol.Codec{protocol.CodecMsgpack, protocol.CodecJSON} {
		for i, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				r := runTask(t, bin, codec, tt.task, tt.store, tt.params, i%2 == 1)
				if r.Err != nil {
					t.Errorf("exit: %v\n%s", r.Err, r.Output)
				}
				tt.check(t, r)
			})
		}
	}
}
