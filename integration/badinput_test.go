package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
)

// activityOf reads (without acking) the queued activity of a queue that no
// worker serves, as a worker would get it.
func activityOf(t *testing.T, qc *queue.Client, q string) *activity.ExecuteTask {
	t.Helper()
	cons, err := qc.ActivityConsumer(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := <-batch.Messages()
	if !ok {
		t.Fatalf("no activity on %s", q)
	}
	a, err := activity.Decode(m.Data())
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Nak()
	return a.ExecuteTask
}

func TestTokensActOnlyForTheirTask(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	qc, err := queue.New(t.Context(), natstest.Connect(t, c.nats), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	x := c.submit(activity.TaskSpec{Queue: "idle", Entrypoint: sh("true")})
	actX := activityOf(t, qc, "idle")
	if actX.TI.ID != x.ID {
		t.Fatalf("activity is for %s, want %s", actX.TI.ID, x.ID)
	}
	y := c.submit(activity.TaskSpec{Queue: "other", Entrypoint: sh("true")})
	ec, err := execution.NewClient(execution.ClientConfig{URL: c.apiURL, RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	run := execution.RunRequest{Hostname: "h", PID: 1, WorkerID: "w1", ActivityID: actX.ID, StartDate: time.Now()}

	if _, err := ec.Run(ctx, actX.Token, y.ID, run); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("run of another task with this token: %v, want 403", err)
	}
	if _, err := ec.Run(ctx, "garbage", x.ID, run); !errors.Is(err, execution.ErrUnauthorized) {
		t.Errorf("run with a garbage token: %v, want 401", err)
	}
	if err := ec.Task(x.ID, actX.Token).Heartbeat(ctx, execution.HeartbeatRequest{Hostname: "h", PID: 1, WorkerID: "w1"}); !errors.Is(err, execution.ErrUnauthorized) {
		t.Errorf("heartbeat with a workload token: %v, want 401", err)
	}
	rr, err := ec.Run(ctx, actX.Token, x.ID, run)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := ec.Run(ctx, actX.Token, x.ID, execution.RunRequest{Hostname: "h2", PID: 2, WorkerID: "w2", ActivityID: actX.ID}); !errors.Is(err, execution.ErrConflict) {
		t.Errorf("second worker's run: %v, want 409", err)
	}
	tx := ec.Task(x.ID, rr.Token)
	ty := ec.Task(y.ID, rr.Token)
	if err := ty.State(ctx, execution.StateRequest{State: activity.StateSuccess}); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("state of another task: %v, want 403", err)
	}
	if err := ty.Heartbeat(ctx, execution.HeartbeatRequest{Hostname: "h", PID: 1, WorkerID: "w1"}); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("heartbeat of another task: %v, want 403", err)
	}
	if err := tx.Heartbeat(ctx, execution.HeartbeatRequest{Hostname: "h2", PID: 2, WorkerID: "w2"}); !errors.Is(err, execution.ErrConflict) {
		t.Errorf("heartbeat from a worker that does not own the task: %v, want 409", err)
	}
	if err := tx.State(ctx, execution.StateRequest{State: activity.StateQueued}); !errors.Is(err, execution.ErrBadRequest) {
		t.Errorf("state queued from a worker: %v, want 400", err)
	}
	if got, _ := c.api.Get(ctx, y.ID); got.State != activity.StateQueued {
		t.Errorf("other task changed to %s", got.State)
	}
	if err := tx.State(ctx, execution.StateRequest{State: activity.StateSuccess, EndDate: time.Now()}); err != nil {
		t.Fatalf("own state: %v", err)
	}
	if err := tx.State(ctx, execution.StateRequest{State: activity.StateFailed, EndDate: time.Now()}); !errors.Is(err, execution.ErrConflict) {
		t.Errorf("success → failed: %v, want 409", err)
	}
	if got, _ := c.api.Get(ctx, x.ID); got.State != activity.StateSuccess {
		t.Errorf("task is %s after an illegal transition, want success", got.State)
	}
}

func TestMalformedInputIsRejected(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	ctx := t.Context()

	// Through the public API: a clear 400 and nothing queued.
	for _, tc := range []struct{ name, body, want string }{
		{"not_json", `{"queue":`, "body"},
		{"unknown_field", `{"queue":"default","command":["true"],"colour":"blue"}`, "unknown field"},
		{"bad_queue", `{"queue":"Not A Queue","command":["true"]}`, "queue"},
		{"no_entrypoint", `{"queue":"default"}`, "entrypoint"},
		{"bad_duration", `{"queue":"default","command":["true"],"execution_timeout":"soonish"}`, "duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(c.apiURL+"/api/v1/activities", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb execution.ErrorBody
			_ = json.Unmarshal(b, &eb)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(eb.Detail, tc.want) {
				t.Errorf("status %d body %s, want 400 mentioning %q", resp.StatusCode, b, tc.want)
			}
		})
	}
	if tis, _, err := c.api.List(ctx, client.ListOpts{}); err != nil || len(tis) != 0 {
		t.Fatalf("after bad submissions: %d task instances, err %v", len(tis), err)
	}
	big := bytes.Repeat([]byte("x"), 5<<20)
	resp, err := http.Post(c.apiURL+"/api/v1/activities", "application/json", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", resp.StatusCode)
	}

	// On the queue itself: the worker dead-letters it and goes on.
	qc, err := queue.New(ctx, natstest.Connect(t, c.nats), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := qc.PublishActivity(ctx, "default", "garbage-1", []byte(`{"kind":"ExecuteTask","execute_task":{"id":1}}`)); err != nil {
		t.Fatal(err)
	}
	ti := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID, 30*time.Second)
	if ti.State != activity.StateSuccess {
		t.Fatalf("task after a malformed activity: %s", ti.State)
	}
	dl, err := qc.JetStream().Stream(ctx, "DEADLETTER")
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	testbin.Eventually(t, 10*time.Second, "a dead letter", func() bool {
		msg, _ = dl.GetLastMsgForSubject(ctx, "deadletter.default")
		return msg != nil
	})
	if msg == nil || !strings.Contains(msg.Header.Get("Taskwire-Reason"), "invalid activity") {
		t.Fatalf("dead letter = %+v, want the malformed activity with its reason", msg)
	}
}
