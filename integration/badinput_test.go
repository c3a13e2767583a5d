package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// activityOf reads (without acking) the queued activity of a queue that no
// worker serves, as a worker would get it.
func activityOf(t *testing.T, qc *queue.Client, q string) *activity.ExecuteTask {
	t.Helper()
	cons, err := qc.ActivityConsumer(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	m, err := queuetest.Next(cons, 5*time.Second)
	if err != nil {
		t.Fatalf("no activity on %s: %v", q, err)
	}
	a, err := activity.Decode(m.Data())
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Nak()
	return a.ExecuteTask
}

func TestTokensActOnlyForTheirTask(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
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
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
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
	var msg *queuetest.RawStreamMsg
	testbin.Eventually(t, 10*time.Second, "a dead letter", func() bool {
		msg, _ = queuetest.LastMsg(ctx, qc.Conn(), queue.StreamDeadLetter, "deadletter.default")
		return msg != nil
	})
	if msg == nil || !strings.Contains(msg.Header.Get("Taskwire-Reason"), "invalid activity") {
		t.Fatalf("dead letter = %+v, want the malformed activity with its reason", msg)
	}
}

// Malformed activities interleaved with real tasks on a queue served by one
// worker with one slot: each is moved to the dead-letter stream with its
// reason, untouched, and the real tasks behind them all run.
func TestMalformedActivitiesAreDeadLetteredAndNeverBlock(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	qc, err := queue.New(t.Context(), natstest.Connect(t, c.nats), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A real activity, for a queue no worker serves, with a forged token.
	c.submit(activity.TaskSpec{Queue: "idle", Entrypoint: sh("true")})
	forged := *activityOf(t, qc, "idle")
	forged.Token, forged.Queue = "forged.token.value", "default"
	forgedData, err := activity.Activity{Kind: activity.KindExecuteTask, ExecuteTask: &forged}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(6, 6))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	bad := []struct {
		data   []byte
		reason string
	}{
		{[]byte("not json at all"), "malformed activity"},
		{[]byte(`{}`), "malformed activity"},
		{[]byte(`{"kind":"Nope"}`), "malformed activity"},
		{[]byte(`{"kind":"ExecuteTask"}`), "malformed activity"},
		{[]byte(`{"kind":"ExecuteTask","execute_task":{"id":1}}`), "malformed activity"},
		{noise, "malformed activity"},
		{forgedData, "run refused"},
	}
	c.startWorker(workerOpts{concurrency: 1})
	out := c.path("runs")
	var ids []string
	for i, b := range bad {
		if err := qc.PublishActivity(t.Context(), "default", fmt.Sprintf("garbage-%d", i), b.data); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(sideEffect(out))}).ID)
	}
	for _, id := range ids {
		if got := c.wait(id, 30*time.Second); got.State != activity.StateSuccess {
			t.Fatalf("task behind the garbage: %s (%s)", got.State, got.Reason)
		}
	}
	checkSucceededOnce(t, c, ids, out)

	var letters []*queuetest.RawStreamMsg
	testbin.Eventually(t, 10*time.Second, "every malformed activity to be dead-lettered", func() bool {
		var err error
		letters, err = queuetest.StreamMsgs(t.Context(), qc.Conn(), queue.StreamDeadLetter)
		return err == nil && len(letters) >= len(bad)
	})
	if len(letters) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(letters), len(bad))
	}
	for _, b := range bad {
		found := false
		for _, m := range letters {
			if bytes.Equal(m.Data, b.data) {
				found = true
				if r := m.Header.Get(queue.HeaderReason); !strings.Contains(r, b.reason) {
					t.Errorf("dead letter %.40q: reason %q, want it to say %q", b.data, r, b.reason)
				}
			}
		}
		if !found {
			t.Errorf("%.40q was not dead-lettered as it was", b.data)
		}
	}
	info, err := queuetest.Consumer(t.Context(), qc.Conn(), queue.StreamActivities, queue.ActivityConsumerName("default"))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("queue default: %d pending, %d unacked; want it empty", info.NumPending, info.NumAckPending)
	}
}

// A poisoned task SIGKILLs the worker that runs it, on every try. Workers
// are restarted as they die; the task stops after its retries, failed with a
// reason naming the lost heartbeat, and a healthy task after it runs.
func TestPoisonedTaskStopsAfterItsRetries(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{zombieThreshold: "1500ms"})
	w := c.startWorker(workerOpts{name: "worker0"})
	restarts := 0
	poison := c.submit(activity.TaskSpec{Queue: "default", TaskID: "poison", Entrypoint: sh(`kill -9 $PPID; sleep 5`),
		RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: activity.Duration(50 * time.Millisecond)}})
	var got *activity.TaskInstance
	testbin.Eventually(t, 45*time.Second, "the poisoned task to fail", func() bool {
		select {
		case <-w.Done():
			restarts++
			w = c.startWorker(workerOpts{name: fmt.Sprintf("worker%d", restarts)})
		default:
		}
		ti, err := c.api.Get(t.Context(), poison.ID)
		got = ti
		return err == nil && ti.State.Terminal()
	})
	t.Logf("poisoned task: %s on try %d after killing %d workers: %s", got.State, got.TryNumber, restarts, got.Reason)
	if got.State != activity.StateFailed || got.TryNumber != 3 || len(got.Tries) != 3 {
		t.Fatalf("%s on try %d (%d tries), want failed after 3 tries", got.State, got.TryNumber, len(got.Tries))
	}
	for _, tr := range got.Tries {
		if !strings.Contains(tr.Reason, "zombie") || !strings.Contains(tr.Reason, "heartbeat") {
			t.Errorf("try %d reason %q, want the lost heartbeat named", tr.TryNumber, tr.Reason)
		}
	}
	if !strings.Contains(got.Reason, "heartbeat") {
		t.Errorf("final reason %q, want the lost heartbeat named", got.Reason)
	}
	if restarts < 3 {
		t.Errorf("%d workers killed, want one per try (3)", restarts)
	}
	select {
	case <-w.Done():
		w = c.startWorker(workerOpts{name: "last"})
	default:
	}
	if ok := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID, 30*time.Second); ok.State != activity.StateSuccess {
		t.Fatalf("a healthy task after the poisoned one: %s (%s)", ok.State, ok.Reason)
	}
}
