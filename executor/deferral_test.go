package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// deferred runs a submitted task and defers it on trig.
func (f *fixture) deferred(trig activity.Trigger, timeout time.Duration) (*activity.TaskInstance, string) {
	f.t.Helper()
	ti, tc := f.running(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}},
		ExecutionTimeout: activity.Duration(time.Hour)})
	trig.Timeout = activity.Duration(timeout)
	err := tc.State(f.t.Context(), execution.StateRequest{State: activity.StateDeferred,
		Trigger: &trig, NextMethod: "resume", NextKwargs: map[string]any{"k": "v"}})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.eventually("deferred", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateDeferred }, ti.ID), tc.Token()
}

func TestDeferPublishesTheNormalizedTrigger(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, _ := f.deferred(activity.Trigger{Classpath: "taskwire.triggers.TimeDelta", Kwargs: map[string]any{"delta": "1h"}}, 0)
	trig := ti.Trigger
	if trig == nil || trig.ID != ti.ActivityID || trig.Kind != "timedelta" || trig.TIID != ti.ID || trig.Try != 1 || trig.DeferredAt.IsZero() {
		t.Fatalf("recorded trigger %+v", trig)
	}
	if _, ok := trig.Kwargs["moment"].(string); !ok {
		t.Errorf("timedelta not fixed to a moment at defer time: %v", trig.Kwargs)
	}
	cons, err := f.q.TriggerConsumer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m, err := queuetest.Next(cons, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got activity.Trigger
	if err := json.Unmarshal(m.Data(), &got); err != nil || got.ID != trig.ID {
		t.Fatalf("published trigger %s (%v), want %s", m.Data(), err, trig.ID)
	}
}

func TestBadTriggerFailsAtDeferTime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, tc := f.running(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}},
		RetryPolicy: activity.RetryPolicy{Retries: 3}})
	err := tc.State(t.Context(), execution.StateRequest{State: activity.StateDeferred,
		Trigger: &activity.Trigger{Classpath: "datetime", Kwargs: map[string]any{"moment": "2030-01-02T03:04:05"}}, NextMethod: "resume"})
	if !errors.Is(err, execution.ErrBadRequest) {
		t.Fatalf("defer on a naive time: %v, want 400", err)
	}
	got := f.eventually("failed", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateFailed }, ti.ID)
	if got.TryNumber != 1 || got.Trigger != nil {
		t.Errorf("after a bad trigger: try %d trigger %+v, want failed on try 1 with no trigger", got.TryNumber, got.Trigger)
	}
	cons, err := f.q.TriggerConsumer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if m, err := queuetest.Next(cons, 300*time.Millisecond); err == nil {
		t.Fatalf("a bad trigger was published: %s", m.Data())
	}
}

// An event delivered twice (a trigger run in two places, past the
// de-duplication window) resumes its task once; an event of another
// trigger is dropped.
func TestEventResumesExactlyOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, 0)
	publish := func(msgID string, ev activity.TriggerEvent) {
		b, _ := json.Marshal(ev)
		if err := queuetest.Publish(t.Context(), f.q.Conn(), queue.EventSubject(ti.ID), b, msgID); err != nil {
			t.Fatal(err)
		}
	}
	publish("stale", activity.TriggerEvent{TriggerID: "someone-else.9", TIID: ti.ID, Try: 1, Payload: "no"})
	publish("first", activity.TriggerEvent{TriggerID: ti.Trigger.ID, TIID: ti.ID, Try: 1, Payload: "yes"})
	publish("second", activity.TriggerEvent{TriggerID: ti.Trigger.ID, TIID: ti.ID, Try: 1, Payload: "again"})

	act, m := f.take("q")
	_ = m.Ack()
	if act.NextMethod != "resume" || act.NextKwargs["event"] != "yes" || act.NextKwargs["k"] != "v" || act.TI.TryNumber != 1 {
		t.Fatalf("resume activity %+v", act)
	}
	got := f.eventually("queued", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateQueued }, ti.ID)
	if got.TryNumber != 1 || got.Trigger != nil {
		t.Errorf("resumed record: try %d trigger %+v", got.TryNumber, got.Trigger)
	}
	cons, err := f.q.ActivityConsumer(t.Context(), "q")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := queuetest.Next(cons, 500*time.Millisecond); err == nil {
		t.Fatalf("a second resume activity: %s", m.Data())
	}
}

// With no triggerer, the executor fails a trigger past its timeout.
func TestTriggerTimeoutBackstop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "never"}}, 100*time.Millisecond)
	act, m := f.take("q")
	_ = m.Ack()
	if act.NextMethod != activity.FailMethod || act.TI.ID != ti.ID {
		t.Fatalf("resume activity %+v, want %s", act, activity.FailMethod)
	}
	if msg, _ := act.NextKwargs["error"].(string); msg == "" {
		t.Errorf("no error in next_kwargs %v", act.NextKwargs)
	}
}

// execution_timeout counts running time: the resume activity carries what
// is left of it.
func TestResumeCarriesTheTimeoutLeft(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, 0)
	if ti.RunTime <= 0 {
		t.Fatalf("run time %s after a deferral, want > 0", ti.RunTime.D())
	}
	ev, _ := json.Marshal(activity.TriggerEvent{TriggerID: ti.Trigger.ID, TIID: ti.ID, Try: 1})
	if err := f.q.PublishEvent(t.Context(), ti.ID, ti.Trigger.ID, ev); err != nil {
		t.Fatal(err)
	}
	act, m := f.take("q")
	_ = m.Ack()
	if want := time.Hour - ti.RunTime.D(); act.ExecutionTimeout.D() != want {
		t.Errorf("resume timeout %s, want %s", act.ExecutionTimeout.D(), want)
	}
}

// A trigger whose publish fails (NATS away, here its stream gone) is
// published again by the scan once it can be, not left until a restart.
func TestFailedTriggerPublishIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{ScanInterval: 50 * time.Millisecond})
	if err := queuetest.DeleteStream(t.Context(), f.q.Conn(), queue.StreamTriggers); err != nil {
		t.Fatal(err)
	}
	ti, _ := f.deferred(activity.Trigger{Classpath: "timedelta", Kwargs: map[string]any{"delta": "1h"}}, 0)
	if _, err := queue.New(t.Context(), f.q.Conn(), queue.Config{}); err != nil {
		t.Fatal(err)
	}
	cons, err := f.q.TriggerConsumer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m, err := queuetest.Next(cons, 10*time.Second)
	if err != nil {
		t.Fatalf("the trigger whose publish failed was not published again: %v", err)
	}
	var got activity.Trigger
	if err := json.Unmarshal(m.Data(), &got); err != nil || got.ID != ti.Trigger.ID {
		t.Fatalf("published trigger %s (%v), want %s", m.Data(), err, ti.Trigger.ID)
	}
}

// A resumed task whose activity cannot be published (here its stream is
// gone) is queued, and the scan publishes its activity once it can.
func TestFailedResumePublishIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{ScanInterval: 50 * time.Millisecond})
	ti, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, 0)
	if err := queuetest.DeleteStream(t.Context(), f.q.Conn(), queue.StreamActivities); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(activity.TriggerEvent{TriggerID: ti.Trigger.ID, TIID: ti.ID, Try: 1, Payload: "yes"})
	if err := queuetest.Publish(t.Context(), f.q.Conn(), queue.EventSubject(ti.ID), b, "ev"); err != nil {
		t.Fatal(err)
	}
	f.eventually("queued", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateQueued }, ti.ID)
	testbin.Eventually(t, 10*time.Second, "the resume's publish failed", func() bool {
		_, failed := f.ex.unpublished.Load(ti.ID)
		return failed
	})
	if _, err := queue.New(t.Context(), f.q.Conn(), queue.Config{}); err != nil {
		t.Fatal(err)
	}
	act, m := f.take("q")
	_ = m.Ack()
	if act.TI.ID != ti.ID || act.NextMethod != "resume" {
		t.Fatalf("activity %+v, want the resume of %s", act, ti.ID)
	}
}

// A trigger goes out beside its task's deferred write, so its event may
// come back before the write is stored (or seen by this replica): such an
// event waits for the deferral instead of being dropped as stale, and
// resumes the task once it is recorded.
func TestEventBeforeItsDeferralResumes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, tc := f.running(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	// The event of the trigger this dispatch is about to defer on (a
	// trigger's id is its dispatch's activity id), while still running.
	b, _ := json.Marshal(activity.TriggerEvent{TriggerID: ti.ActivityID, TIID: ti.ID, Try: 1, Payload: "early"})
	if err := queuetest.Publish(t.Context(), f.q.Conn(), queue.EventSubject(ti.ID), b, "early"); err != nil {
		t.Fatal(err)
	}
	// Its first delivery finds the task running: wait for it to be put
	// back before the deferral is recorded.
	deadline := time.Now().Add(10 * time.Second)
	for f.ex.earlyEvents.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	err := tc.State(t.Context(), execution.StateRequest{State: activity.StateDeferred,
		Trigger: &activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, NextMethod: "resume"})
	if err != nil {
		t.Fatal(err)
	}
	res, m := f.take("q")
	_ = m.Ack()
	if res.NextMethod != "resume" || res.NextKwargs["event"] != "early" || res.TI.ID != ti.ID {
		t.Fatalf("resume activity %+v, want the early event's", res)
	}
}

// The resumed activity is published beside the record's write, so a
// worker's …/run may name a dispatch the record does not show yet: it is
// answered 404 (the worker has it redelivered shortly), not 409 (which
// drops it for good), and when the write is under way here it waits for
// it and succeeds.
func TestRunOfADispatchNotRecordedYet(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, 0)
	next := fmt.Sprintf("%s.%d", ti.ID, ti.Dispatch+1)
	tok, err := f.ex.tokens.issue(audWorkload, ti.ID, ti.TryNumber, next, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	req := runReq
	req.ActivityID = next
	if _, err := f.ec.Run(t.Context(), tok, ti.ID, req); !errors.Is(err, execution.ErrNotFound) {
		t.Fatalf("…/run of a dispatch not recorded: %v, want 404", err)
	}
	if got, _ := f.ex.Get(t.Context(), ti.ID); got.State != activity.StateDeferred {
		t.Fatalf("record %s after the early …/run, want still deferred", got.State)
	}

	// The resume's write under way here: the …/run waits for it.
	c, _ := f.ex.store.cached(ti.ID)
	resumed := c.ti.Clone()
	if err := resumed.SetState(activity.StateQueued, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	resumed.Trigger = nil
	resumed.NextActivityID()
	raw, err := resumed.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	before := f.ex.store.awaits.Load()
	end := f.ex.store.beginWrite(resumed, raw)
	ran := make(chan error, 1)
	go func() {
		_, err := f.ec.Run(t.Context(), tok, ti.ID, req)
		ran <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.ex.store.awaits.Load() == before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	rev, err := f.ex.store.kv.Update(t.Context(), ti.ID, raw, c.rev)
	if err != nil {
		end()
		t.Fatal(err)
	}
	f.ex.store.remember(resumed, raw, rev, c.ti)
	end()
	if err := <-ran; err != nil {
		t.Fatalf("…/run waiting for the resume's write: %v", err)
	}
	got := f.eventually("running", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateRunning }, ti.ID)
	if got.ActivityID != next {
		t.Errorf("running on %s, want %s", got.ActivityID, next)
	}
}
