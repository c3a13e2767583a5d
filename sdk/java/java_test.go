// Package java_test runs the example Java runtime (examples/javatasks),
// built against the Java SDK's jar as a user builds it, as a process against
// a stand-in worker that speaks the Go protocol package: what Java writes
// must decode strictly on the Go side. The SDK's own tests are JUnit 5 tests
// run by Maven (mvn -q -f sdk/java package); TestGoVectorsCurrent here keeps
// the vectors they read from Go's encoders current. The jar comes from
// ./test.sh ($TASKWIRE_TEST_JAVA_SDK_JAR) or sdk/java/target; a JDK 17 or
// newer is required: without one, or without the jar, the tests fail rather
// than skip.
package java_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
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

func javaBin(t *testing.T) string {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		t.Fatalf("java not found on PATH: the Java SDK needs a JDK 17 or newer (%v)", err)
	}
	return java
}

type runOpts struct {
	classes    string // the class path; examples/javatasks built against the jar when ""
	params     map[string]any
	nextMethod string
	nextKwargs map[string]any
	unix       bool
	viaEnv     bool
	dagRun     *protocol.DagRun
}

// runExample starts `java -cp CLASSES Tasks` for task against a stand-in
// worker that speaks the protocol package's JSON codec on real sockets, and
// waits for it to exit.
func runExample(t *testing.T, task string, s runtimetest.Store, o runOpts) runtimetest.Result {
	t.Helper()
	cls := o.classes
	if cls == "" {
		cls = testbin.JavaTasksClasspath(t)
	}
	java := javaBin(t)
	return runtimetest.Run(t, runtimetest.Config{
		Codec: protocol.CodecJSON,
		Startup: protocol.StartupDetails{
			TI:         protocol.TaskInstance{ID: "ti-" + task, DagID: "etl", TaskID: task, RunID: "r1", MapIndex: -1, TryNumber: 1},
			Context:    protocol.RunContext{MaxTries: 1, Queue: "java", Entrypoint: task, Params: o.params, DagRun: o.dagRun},
			NextMethod: o.nextMethod, NextKwargs: o.nextKwargs,
			StartDate: time.Now().UTC().Format(time.RFC3339Nano),
		},
		Store:   s,
		Unix:    o.unix,
		Timeout: time.Minute,
		Run: func(ctx context.Context, comm, logs, secret string) (string, error) {
			cmd := exec.CommandContext(ctx, java, "-cp", cls, "Tasks")
			cmd.Env = append(os.Environ(), "TASKWIRE_CODEC=json", runtimetest.SecretEnv(secret))
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
		{"run_info", "run_info", runtimetest.Store{}, runOpts{dagRun: &protocol.DagRun{DagID: "etl", RunID: "r1",
			LogicalDate: "2026-11-22T00:00:00Z", RunType: "manual", Conf: map[string]any{"day": "monday"}}},
			runtimetest.All(runtimetest.Succeeded, pushed("return_value", map[string]any{"dag_id": "etl", "run_id": "r1",
				"logical_date": "2026-11-22T00:00:00Z", "run_type": "manual", "conf": map[string]any{"day": "monday"}}),
				runtimetest.Logged(`"event":"dag run"`))},
		{"run_info_alone", "run_info", runtimetest.Store{}, runOpts{}, runtimetest.All(runtimetest.Succeeded, func(t *testing.T, r runtimetest.Result) {
			if len(r.Requests) != 1 { // SucceedTask alone: no return value
				t.Errorf("requests %#v, want SucceedTask alone", r.Requests)
			}
		})},
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

// TestExampleRefusesMsgpack checks the runtime stops at once, with exit code
// 2 and a clear message, when its queue is not configured with codec json.
func TestExampleRefusesMsgpack(t *testing.T) {
	cls := testbin.JavaTasksClasspath(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, javaBin(t), "-cp", cls, "Tasks", "--comm", "127.0.0.1:1")
	cmd.Env = append(os.Environ(), "TASKWIRE_CODEC=msgpack")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "codec: json") {
		t.Errorf("exit %v, output %q; want exit code 2 asking for codec: json", err, out)
	}
}
