package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// An airflow trigger (the Python trigger runtime's) is published with a
// trigger token, which the task-instance record never holds: read-only
// (connections, variables, XComs of its DAG run), refused for every change
// (401), and good only while its task waits deferred on that trigger at
// that try (403 otherwise) and until it expires (401).
func TestTriggerTokenScope(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newFixture(t, queue.Config{}, Config{WorkloadTokenTTL: time.Hour, ZombieThreshold: time.Hour}, clock.use)
	ctx := t.Context()
	put := func(path string, body any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, f.srv.URL+path, bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d", path, resp.StatusCode)
		}
	}
	put("/api/v1/connections/db", activity.Connection{ConnType: "postgres", Host: "db.internal", Login: "etl", Password: "pw-123456"})
	put("/api/v1/variables/greeting", map[string]string{"value": "hello"})

	ti, tc := f.running(taskSpec("q", "etl", "run1", "wait"))
	if err := tc.SetXCom(ctx, execution.XComKey{DagID: "etl", RunID: "run1", TaskID: "wait", Key: "k", MapIndex: -1}, "v1"); err != nil {
		t.Fatal(err)
	}
	err := tc.State(ctx, execution.StateRequest{State: activity.StateDeferred, NextMethod: "resume",
		Trigger: &activity.Trigger{Classpath: "taskwire.triggers.Airflow", Token: "forged",
			Kwargs: map[string]any{"classpath": "dags.triggers.Poll", "kwargs": map[string]any{"rate_key": "api"}}}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := f.q.TriggerConsumer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := queuetest.Next(cons, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var pub activity.Trigger
	if err := json.Unmarshal(m.Data(), &pub); err != nil || pub.Token == "" || pub.Token == "forged" || pub.Kwargs["rate_key"] != "api" {
		t.Fatalf("published trigger %s (%v): want a minted token and rate_key api", m.Data(), err)
	}
	rec := f.eventually("deferred", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateDeferred }, ti.ID)
	if rec.Trigger.Token != "" {
		t.Errorf("the task-instance record holds a token")
	}
	resp, err := http.Get(f.srv.URL + "/api/v1/task-instances/" + ti.ID)
	if err != nil {
		t.Fatal(err)
	}
	var view bytes.Buffer
	_, _ = view.ReadFrom(resp.Body)
	resp.Body.Close()
	if bytes.Contains(view.Bytes(), []byte(pub.Token)) || bytes.Contains(view.Bytes(), []byte(`"token"`)) {
		t.Errorf("the public API shows a token: %s", view.Bytes())
	}

	tt := f.ec.Task(ti.ID, pub.Token)
	if c, err := tt.Connection(ctx, "db"); err != nil || c.Password != "pw-123456" {
		t.Errorf("connection with the trigger token: %+v, %v", c, err)
	}
	if v, err := tt.Variable(ctx, "greeting"); err != nil || v.Value != "hello" {
		t.Errorf("variable with the trigger token: %+v, %v", v, err)
	}
	own := execution.XComKey{DagID: "etl", RunID: "run1", TaskID: "wait", Key: "k", MapIndex: -1}
	if v, err := tt.XCom(ctx, own); err != nil || v != "v1" {
		t.Errorf("xcom of its run with the trigger token: %v, %v", v, err)
	}
	if _, err := tt.XCom(ctx, execution.XComKey{DagID: "etl", RunID: "run2", TaskID: "wait", Key: "k", MapIndex: -1}); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("xcom of another run: %v, want 403", err)
	}
	// No change of any kind.
	for what, err := range map[string]error{
		"state":           tt.State(ctx, execution.StateRequest{State: activity.StateSuccess}),
		"heartbeat":       tt.Heartbeat(ctx, execution.HeartbeatRequest{Hostname: "h", PID: 7, WorkerID: "w"}),
		"skip downstream": tt.SkipDownstream(ctx, []execution.SkipTask{{TaskID: "x", MapIndex: -1}}),
		"put variable":    tt.PutVariable(ctx, "greeting", execution.VariableBody{Key: "greeting", Value: "bye"}),
		"delete variable": tt.DeleteVariable(ctx, "greeting"),
		"set xcom":        tt.SetXCom(ctx, own, "v2"),
		"delete xcom":     tt.DeleteXCom(ctx, own),
	} {
		if !errors.Is(err, execution.ErrUnauthorized) {
			t.Errorf("%s with the trigger token: %v, want 401", what, err)
		}
	}
	if v, err := tt.Variable(ctx, "greeting"); err != nil || v.Value != "hello" {
		t.Errorf("the variable changed: %+v, %v", v, err)
	}
	if cur := f.eventually("still deferred", func(*activity.TaskInstance) bool { return true }, ti.ID); cur.State != activity.StateDeferred {
		t.Errorf("task is %s after the refused calls, want deferred", cur.State)
	}
	// Another try's or another trigger's token: 403.
	for what, tok := range map[string]string{
		"another try":     mustIssue(t, f.ex, ti.ID, 2, pub.ID),
		"another trigger": mustIssue(t, f.ex, ti.ID, 1, "other-trigger"),
	} {
		if _, err := f.ec.Task(ti.ID, tok).Variable(ctx, "greeting"); !errors.Is(err, execution.ErrForbidden) {
			t.Errorf("%s's trigger token: %v, want 403", what, err)
		}
	}
	// Expired: 401.
	clock.advance(time.Hour + time.Minute)
	if _, err := f.ec.Task(ti.ID, pub.Token).Variable(ctx, "greeting"); !errors.Is(err, execution.ErrUnauthorized) {
		t.Errorf("expired trigger token: %v, want 401", err)
	}
}

func mustIssue(t *testing.T, e *Executor, tiID string, try int, triggerID string) string {
	t.Helper()
	tok, err := e.tokens.issue(audTrigger, tiID, try, triggerID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
