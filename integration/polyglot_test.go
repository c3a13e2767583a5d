package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// The polyglot example: a Go task that defers on a timer, a Python task and
// a Java task, passing a value by XCom, run by examples/polyglot.
func TestPolyglotPipeline(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{queues: "default,go,python,java", config: c.runtimeFile(t)})
	c.startTriggerer(triggererOpts{})
	bin := testbin.MustBuild(t, "./examples/polyglot")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--api-url", c.apiURL, "--run-id", "r1").CombinedOutput()
	if err != nil {
		t.Fatalf("polyglot: %v\n%s", err, out)
	}
	for _, want := range []string{"extract   go     success", "transform python success", `xcom return_value = 42`,
		"load      java   success", `"loaded 42"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	v, err := c.api.XCom(ctx, "polyglot", "r1", "load", "return_value")
	if err != nil || v != "loaded 42" {
		t.Errorf("load's return_value %v (%v), want \"loaded 42\"", v, err)
	}
}

// Each language SDK, through a real worker and executor: variables and
// connections, XCom push and pull, logs, an exception with its traceback in
// the logs, deferring and resuming.
func TestLanguageSDKs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{queues: "default,go,python,java", config: c.runtimeFile(t), concurrency: 6})
	c.startTriggerer(triggererOpts{})
	ctx := t.Context()
	if _, err := c.api.SetVariable(ctx, "greeting", "hello polyglot", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.SetConnection(ctx, activity.Connection{ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Login: "app", Password: "s3cret-pw"}); err != nil {
		t.Fatal(err)
	}
	for _, lang := range []struct{ queue, exception string }{
		{"python", "ValueError: failing on purpose"},
		{"java", "IllegalStateException: failing on purpose"},
	} {
		t.Run(lang.queue, func(t *testing.T) {
			t.Parallel()
			run := "run-" + lang.queue
			spec := func(task string, params map[string]any) activity.TaskSpec {
				return activity.TaskSpec{Queue: lang.queue, DagID: "sdk", RunID: run, TaskID: task,
					Entrypoint: activity.Entrypoint{Task: task}, Params: params}
			}
			ok := func(ti *activity.TaskInstance) *activity.TaskInstance {
				t.Helper()
				got := c.wait(ti.ID, 60*time.Second)
				if got.State != activity.StateSuccess {
					t.Fatalf("%s/%s: %s (%s)\n%s", lang.queue, got.TaskID, got.State, got.Reason, c.logs(got.ID))
				}
				return got
			}
			cfg := ok(c.submit(spec("read_config", nil)))
			if logs := c.logs(cfg.ID); !strings.Contains(logs, "hello polyglot") || !strings.Contains(logs, "db.internal") {
				t.Errorf("read_config logs lack the variable or the connection:\n%s", logs)
			} else if strings.Contains(logs, "s3cret-pw") {
				t.Errorf("the connection password is in the logs:\n%s", logs)
			}
			ok(c.submit(spec("push", nil)))
			ok(c.submit(spec("pull", nil)))
			if v, err := c.api.XCom(ctx, "sdk", run, "push", "value"); err != nil || fmt.Sprint(v) != "42" {
				t.Errorf("push's value %v (%v), want 42", v, err)
			}
			failed := c.wait(c.submit(spec("fail", nil)).ID, 60*time.Second)
			if failed.State != activity.StateFailed {
				t.Errorf("fail: %s, want failed", failed.State)
			}
			if logs := c.logs(failed.ID); !strings.Contains(logs, lang.exception) || !strings.Contains(strings.ToLower(logs), "traceback") && !strings.Contains(logs, "\tat ") && !strings.Contains(logs, "at Tasks") {
				t.Errorf("fail logs lack %q with its traceback:\n%s", lang.exception, logs)
			}
			waited := ok(c.submit(spec("wait", map[string]any{"seconds": 0.2})))
			if waited.TryNumber != 1 || waited.NextMethod != "resume" {
				t.Errorf("wait: try %d next_method %q, want a resume on try 1", waited.TryNumber, waited.NextMethod)
			}
			if logs := c.logs(waited.ID); !strings.Contains(logs, "resumed") {
				t.Errorf("wait logs lack the resume:\n%s", logs)
			}
		})
	}
}

// A runtime that crashes before the handshake, one that sends garbage
// after its secret, one that sends garbage instead of its secret (as an
// SDK without the secret would send its first request) and one that never
// connects each fail with a clear reason and free the worker's only slot.
func TestBadRuntimesFreeTheSlot(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	file := c.path("bad.yaml")
	yaml := `queues:
  default:
    runtime: command
  crash:
    command: [sh, -c, "echo no such module >&2; exit 3", "{comm_addr}"]
  garbage:
    command: [bash, -c, 'a=$0; exec 3<>/dev/tcp/${a%:*}/${a##*:}; printf "\x00\x00\x00\x5b{\"type\":\"Auth\",\"secret\":\"%s\"}\x00\x00\x00\x05hello" "$TASKWIRE_COMM_SECRET" >&3; sleep 5', "{comm_addr}"]
  noauth:
    command: [bash, -c, 'a=$0; exec 3<>/dev/tcp/${a%:*}/${a##*:}; printf "\x00\x00\x00\x05hello" >&3; sleep 5', "{comm_addr}"]
  silent:
    command: [sh, -c, "exec sleep 300", "{comm_addr}"]
`
	if err := writeFile(file, yaml); err != nil {
		t.Fatal(err)
	}
	c.startWorker(workerOpts{queues: "default,crash,garbage,noauth,silent", config: file, concurrency: 1,
		extra: []string{"--handshake-timeout", "1s"}})
	for _, tc := range []struct{ queue, reason string }{
		{"crash", "runtime exited before handshake: exit code 3"},
		{"garbage", "protocol error"},
		{"noauth", "runtime did not authenticate on the comm channel within 1s: 1 connection(s) without the runtime's secret"},
		{"silent", "runtime did not connect within 1s"},
	} {
		ti := c.submit(activity.TaskSpec{Queue: tc.queue, TaskID: "t", Entrypoint: activity.Entrypoint{Task: "t"}})
		got := c.wait(ti.ID, 30*time.Second)
		if got.State != activity.StateFailed || !strings.Contains(got.Reason, tc.reason) {
			t.Errorf("%s: %s (%q), want failed with %q", tc.queue, got.State, got.Reason, tc.reason)
		}
	}
	if got := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID, 30*time.Second); got.State != activity.StateSuccess {
		t.Fatalf("a task after the bad runtimes: %s (%s): the slot was not freed", got.State, got.Reason)
	}
}
