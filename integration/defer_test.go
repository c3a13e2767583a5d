package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

func goTask(task string, params map[string]any) activity.TaskSpec {
	return activity.TaskSpec{Queue: "go", TaskID: task, Entrypoint: activity.Entrypoint{Task: task}, Params: params}
}

// checkResumedOnce checks a deferred task ended in success on its first
// try, resumed with an event.
func checkResumedOnce(t *testing.T, c *cluster, ti *activity.TaskInstance) {
	t.Helper()
	if ti.State != activity.StateSuccess || ti.TryNumber != 1 || len(ti.Tries) != 1 {
		t.Fatalf("%s: %s on try %d (%d tries): %s\n%s", ti.TaskID, ti.State, ti.TryNumber, len(ti.Tries), ti.Reason, c.logs(ti.ID))
	}
	if _, ok := ti.NextKwargs["event"]; !ok {
		t.Errorf("%s: resumed without an event: next_kwargs %v", ti.TaskID, ti.NextKwargs)
	}
}

func TestDeferOnTimedeltaResumesIntoNextMethod(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	c.startTriggerer(triggererOpts{})
	ti := c.submit(goTask("wait", map[string]any{"seconds": 0.3}))
	got := c.wait(ti.ID, 30*time.Second)
	checkResumedOnce(t, c, got)
	if got.NextMethod != "resume" {
		t.Errorf("next_method %q, want resume", got.NextMethod)
	}
	logs := c.logs(ti.ID)
	if !strings.Contains(logs, "resumed") || !strings.Contains(logs, "moment") {
		t.Errorf("logs lack the resume with its timer event:\n%s", logs)
	}
}

func TestDeferTwice(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	c.startTriggerer(triggererOpts{})
	got := c.wait(c.submit(goTask("wait_twice", nil)).ID, 30*time.Second)
	checkResumedOnce(t, c, got)
	if r := got.NextKwargs["round"]; fmt.Sprint(r) != "2" {
		t.Errorf("round %v after two deferrals, want 2", r)
	}
}

func TestExternalEventBeforeAndAfterTheTriggerStarts(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	ctx := t.Context()

	// Sent while no triggerer runs the trigger: it is not lost.
	early := c.submit(goTask("wait_event", map[string]any{"name": "batch.ready:early"}))
	c.waitState(early.ID, activity.StateDeferred, 30*time.Second)
	if _, err := c.api.SendEvent(ctx, "batch.ready:early", map[string]any{"rows": 7}); err != nil {
		t.Fatal(err)
	}
	tr := c.startTriggerer(triggererOpts{})
	got := c.wait(early.ID, 30*time.Second)
	checkResumedOnce(t, c, got)
	if ev := fmt.Sprint(got.NextKwargs["event"]); !strings.Contains(ev, "rows:7") {
		t.Errorf("event %s, want the payload rows=7", ev)
	}

	// Sent while the trigger runs.
	late := c.submit(goTask("wait_event", map[string]any{"name": "batch.ready:late"}))
	c.waitState(late.ID, activity.StateDeferred, 30*time.Second)
	c.waitHeld(tr, 1, 10*time.Second)
	if _, err := c.api.SendEvent(ctx, "batch.ready:late", "go"); err != nil {
		t.Fatal(err)
	}
	checkResumedOnce(t, c, c.wait(late.ID, 30*time.Second))
	c.waitHeld(tr, 0, 10*time.Second)
}

func TestHTTPTrigger(t *testing.T) {
	parallel(t, shared)
	var ready atomic.Bool
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		if !ready.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "state: READY")
	}))
	defer srv.Close()
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	c.startTriggerer(triggererOpts{})
	ti := c.submit(goTask("wait_http", map[string]any{"url": srv.URL + "/status", "contains": "READY"}))
	c.waitState(ti.ID, activity.StateDeferred, 30*time.Second)
	testbin.Eventually(t, 10*time.Second, "the trigger to poll", func() bool { return polls.Load() >= 2 })
	ready.Store(true)
	got := c.wait(ti.ID, 30*time.Second)
	checkResumedOnce(t, c, got)
	if ev := fmt.Sprint(got.NextKwargs["event"]); !strings.Contains(ev, "READY") {
		t.Errorf("event %s lacks the body", ev)
	}
}

func TestTriggerTimeoutFailsTheTask(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	c.startTriggerer(triggererOpts{})
	ti := c.submit(goTask("wait_event", map[string]any{"name": "never", "timeout": 0.5}))
	got := c.wait(ti.ID, 30*time.Second)
	if got.State != activity.StateFailed || !strings.Contains(got.Reason, "trigger timeout") {
		t.Fatalf("%s (%s), want failed with a trigger timeout", got.State, got.Reason)
	}
	if got.TryNumber != 1 {
		t.Errorf("try %d, want 1", got.TryNumber)
	}
}

// With no triggerer at all, the executor enforces trigger timeouts.
func TestTriggerTimeoutWithoutTriggerer(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	ti := c.submit(goTask("wait_event", map[string]any{"name": "never", "timeout": 0.5}))
	got := c.wait(ti.ID, 30*time.Second)
	if got.State != activity.StateFailed || !strings.Contains(got.Reason, "trigger timeout") || !strings.Contains(got.Reason, "executor") {
		t.Fatalf("%s (%s), want failed with a trigger timeout enforced by the executor", got.State, got.Reason)
	}
}

// A deferred task holds no worker slot: with one slot, another task runs
// while the first waits; cancelling the deferred task stops its trigger.
func TestDeferredTaskHoldsNoSlot(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{concurrency: 1})
	tr := c.startTriggerer(triggererOpts{})
	waiting := c.submit(goTask("wait", map[string]any{"seconds": 600}))
	c.waitState(waiting.ID, activity.StateDeferred, 30*time.Second)
	c.waitHeld(tr, 1, 10*time.Second)
	other := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID, 30*time.Second)
	if other.State != activity.StateSuccess {
		t.Fatalf("the other task: %s (%s)", other.State, other.Reason)
	}
	if _, err := c.api.Cancel(t.Context(), waiting.ID); err != nil {
		t.Fatal(err)
	}
	c.waitHeld(tr, 0, 10*time.Second)
}

// SIGKILL the triggerer holding deferred tasks: another takes them over and
// every task resumes exactly once. SIGTERM hands triggers back at once.
func TestTriggererFailover(t *testing.T) {
	parallel(t, shared)
	const n = 20
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{concurrency: 8})
	a := c.startTriggerer(triggererOpts{name: "trig-a"})
	var ids []string
	for i := range n {
		name := "failover"
		if i%2 == 1 {
			name = "handback"
		}
		ids = append(ids, c.submit(goTask("wait_event", map[string]any{"name": name})).ID)
	}
	for _, id := range ids {
		c.waitState(id, activity.StateDeferred, 30*time.Second)
	}
	c.waitHeld(a, n, 20*time.Second)

	// SIGTERM: b, which would wait 60s to call a dead, gets them at once.
	b := c.startTriggerer(triggererOpts{name: "trig-b", deadAfter: "60s"})
	a.Stop(10 * time.Second)
	if !strings.Contains(a.Output(), "handed_back=20") {
		t.Errorf("trig-a did not hand its triggers back:\n%s", a.Output())
	}
	c.waitHeld(b, n, 10*time.Second)

	// SIGKILL: b dies holding them all; c takes them over.
	cc := c.startTriggerer(triggererOpts{name: "trig-c"})
	b.Kill()
	start := time.Now()
	c.waitHeld(cc, n, 30*time.Second)
	t.Logf("trig-c took over %d triggers %s after trig-b was killed", n, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, name := range []string{"failover", "handback"} {
		if _, err := c.api.SendEvent(ctx, name, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		checkResumedOnce(t, c, c.wait(id, 30*time.Second))
	}
	c.waitHeld(cc, 0, 10*time.Second)
}

// A command task defers through the file in TASKWIRE_DEFER_FILE and sees
// its resume in TASKWIRE_NEXT_METHOD and TASKWIRE_EVENT. execution_timeout
// counts running time only: 2 × 0.7s of running fits in 1.5s although the
// task takes far longer from start to end.
func TestCommandTaskDefersAndTimeoutCountsRunningTimeOnly(t *testing.T) {
	parallel(t, timed)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	c.startTriggerer(triggererOpts{})
	out := c.path("out")
	// Two runs of 1s each (2s running, a second of margin for a loaded
	// machine) under a 3s timeout, with a 2s deferral between them.
	script := `sleep 1
if [ -z "$TASKWIRE_NEXT_METHOD" ]; then
  printf '{"trigger":"timedelta","kwargs":{"delta":"2s"},"next_method":"after","next_kwargs":{"n":1}}' > "$TASKWIRE_DEFER_FILE"
  exit 0
fi
echo "$TASKWIRE_NEXT_METHOD $TASKWIRE_TRY_NUMBER" >> ` + out + `
echo "$TASKWIRE_EVENT" | grep -q moment`
	submitted := time.Now()
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(script), ExecutionTimeout: activity.Duration(3 * time.Second)})
	got := c.wait(ti.ID, 30*time.Second)
	if got.State != activity.StateSuccess || got.TryNumber != 1 {
		t.Fatalf("%s on try %d (%s)\n%s", got.State, got.TryNumber, got.Reason, c.logs(ti.ID))
	}
	if b, _ := os.ReadFile(out); string(b) != "after 1\n" {
		t.Fatalf("resumed runs %q, want one run of after on try 1", b)
	}
	if d := got.EndDate.Sub(submitted); d < 3*time.Second {
		t.Errorf("the task took %s from submit to end; the test needs it to outlast its timeout", d)
	}
}

// An unknown trigger kind fails the task at defer time with a clear reason,
// and no retry.
func TestUnknownTriggerFailsAtDeferTime(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	script := `printf '{"trigger":"sundial","kwargs":{},"next_method":"after"}' > "$TASKWIRE_DEFER_FILE"`
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(script), RetryPolicy: activity.RetryPolicy{Retries: 2}})
	got := c.wait(ti.ID, 30*time.Second)
	if got.State != activity.StateFailed || !strings.Contains(got.Reason, "sundial") || got.TryNumber != 1 {
		t.Fatalf("%s on try %d (%q), want failed on try 1 naming the unknown trigger", got.State, got.TryNumber, got.Reason)
	}
}
