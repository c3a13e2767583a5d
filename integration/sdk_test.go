package integration

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

func TestGoSDKTasksShareXCom(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	run := "run-" + t.Name()
	push := c.wait(c.submit(activity.TaskSpec{Queue: "go", DagID: "etl", RunID: run, TaskID: "push", Entrypoint: activity.Entrypoint{Task: "push"}}).ID, 30*time.Second)
	if push.State != activity.StateSuccess {
		t.Fatalf("push: %s (%s)\n%s", push.State, push.Reason, c.logs(push.ID))
	}
	pull := c.wait(c.submit(activity.TaskSpec{Queue: "go", DagID: "etl", RunID: run, TaskID: "pull", Entrypoint: activity.Entrypoint{Task: "pull"}}).ID, 30*time.Second)
	if pull.State != activity.StateSuccess {
		t.Fatalf("pull: %s (%s)\n%s", pull.State, pull.Reason, c.logs(pull.ID))
	}
	if l := c.logs(pull.ID); !strings.Contains(l, "42") {
		t.Errorf("pull logs lack the pulled value 42:\n%s", l)
	}
	// Operators read XComs through the public API.
	if v, err := c.api.XCom(t.Context(), "etl", run, "push", "value"); err != nil || v != float64(42) {
		t.Errorf("public xcom read: %v, %v; want 42", v, err)
	}
	if _, err := c.api.XCom(t.Context(), "etl", run, "push", "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("missing xcom: %v, want not found", err)
	}
	// In another run, there is nothing to pull: the task fails.
	other := c.wait(c.submit(activity.TaskSpec{Queue: "go", DagID: "etl", RunID: run + "-other", TaskID: "pull", Entrypoint: activity.Entrypoint{Task: "pull"}}).ID, 30*time.Second)
	if other.State != activity.StateFailed {
		t.Fatalf("pull in another run: %s, want failed", other.State)
	}
}

func TestGoSDKReadsVariablesAndConnections(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	ctx := t.Context()
	if _, err := c.api.SetVariable(ctx, "greeting", "hello taskwire", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.SetConnection(ctx, activity.Connection{ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Login: "app", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	ti := c.wait(c.submit(activity.TaskSpec{Queue: "go", TaskID: "read_config", Entrypoint: activity.Entrypoint{Task: "read_config"}}).ID, 30*time.Second)
	logs := c.logs(ti.ID)
	if ti.State != activity.StateSuccess {
		t.Fatalf("read_config: %s (%s)\n%s", ti.State, ti.Reason, logs)
	}
	for _, want := range []string{"hello taskwire", "db.internal"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	// A missing variable fails the task with a clear reason.
	if err := c.api.DeleteVariable(ctx, "greeting"); err != nil {
		t.Fatal(err)
	}
	ti = c.wait(c.submit(activity.TaskSpec{Queue: "go", TaskID: "read_config", Entrypoint: activity.Entrypoint{Task: "read_config"}}).ID, 30*time.Second)
	if ti.State != activity.StateFailed || !strings.Contains(ti.Reason, "greeting") {
		t.Fatalf("without the variable: %s (%q), want failed naming the variable", ti.State, ti.Reason)
	}
}

func TestGoSDKFailureAndPanic(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	for _, task := range []string{"fail", "panic"} {
		ti := c.wait(c.submit(activity.TaskSpec{Queue: "go", TaskID: task, Entrypoint: activity.Entrypoint{Task: task}}).ID, 30*time.Second)
		if ti.State != activity.StateFailed || ti.Reason == "" {
			t.Errorf("%s: state %s reason %q, want failed with a reason", task, ti.State, ti.Reason)
		}
	}
}
