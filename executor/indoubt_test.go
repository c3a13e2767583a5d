package executor

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// A deferral whose write the executor gave up on while NATS was away, and
// which the NATS client sent anyway on reconnecting (it keeps what is
// published while disconnected), is stored: the task is deferred although
// the worker heard a failure and its trigger was never published. The
// executor reads the record back once NATS is there again and publishes
// the trigger; before, the task stayed deferred on a trigger no triggerer
// had, for ever (TestNATSRestart's lost tasks).
func TestDeferWrittenAfterFailureStillPublishesItsTrigger(t *testing.T) {
	t.Parallel()
	f, stop, restart := restartableFixture(t)
	ti, tc := f.running(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})

	stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	err := tc.State(ctx, execution.StateRequest{State: activity.StateDeferred,
		Trigger:    &activity.Trigger{Classpath: "taskwire.triggers.TimeDelta", Kwargs: map[string]any{"delta": "1h"}},
		NextMethod: "resume"})
	cancel()
	if err == nil {
		t.Fatal("deferred while NATS was away")
	}
	restart()

	// The write the executor gave up on is stored after all.
	testbin.Eventually(t, 20*time.Second, "the record to be deferred", func() bool {
		got, err := f.ex.store.get(t.Context(), ti.ID)
		return err == nil && got.State == activity.StateDeferred
	})
	cons, err := f.q.TriggerConsumer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tm, err := queuetest.Next(cons, 15*time.Second)
	if err != nil {
		t.Fatalf("the deferred task's trigger was not published: %v", err)
	}
	var got activity.Trigger
	if err := json.Unmarshal(tm.Data(), &got); err != nil || got.TIID != ti.ID || got.ID != ti.ActivityID {
		t.Fatalf("published trigger %s (%v), want %s of %s", tm.Data(), err, ti.ActivityID, ti.ID)
	}
}

// restartableFixture is newFixture on a NATS server (file storage) that
// the test stops (stop: it returns once the executor's connection knows
// the server is gone, so what it publishes from then on is kept for the
// reconnection) and starts again on its port and store (restart), the
// executor connected throughout.
func restartableFixture(t *testing.T) (f *fixture, stop, restart func()) {
	t.Helper()
	opts := natstest.Options(t)
	ns := natstest.Start(t, opts)
	opts.Port = natstest.Port(ns)
	nc := natstest.Connect(t, ns)
	qc, err := queue.New(t.Context(), nc, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f = startOn(t, qc, Config{})
	return f, func() {
			natstest.Stop(ns)
			testbin.Eventually(t, 10*time.Second, "the executor's connection to see NATS gone", func() bool { return !nc.IsConnected() })
		}, func() {
			natstest.Start(t, opts)
			t.Cleanup(func() { // before the server stops again
				f.srv.Close()
				_ = f.ex.Stop(context.Background())
			})
		}
}

// The same for a resume (deferred → queued, the executor's own write when
// a trigger fires): stored after the executor gave up on it, it leaves the
// task queued on an activity never published, and the redelivered event
// finds the task no longer deferred and is dropped. The executor publishes
// the activity from the record read back.
func TestResumeWrittenAfterFailureStillPublishesItsActivity(t *testing.T) {
	t.Parallel()
	f, stop, restart := restartableFixture(t)
	ti, _ := f.deferred(activity.Trigger{Classpath: "taskwire.triggers.TimeDelta", Kwargs: map[string]any{"delta": "1h"}}, 0)

	stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	var next string
	_, err := f.ex.store.mutate(ctx, ti.ID, func(ti *activity.TaskInstance) error {
		if err := ti.SetState(activity.StateQueued, "", time.Now()); err != nil {
			return err
		}
		ti.Trigger = nil
		next = ti.NextActivityID()
		return nil
	})
	cancel()
	if err == nil {
		t.Fatal("resumed while NATS was away")
	}
	restart()

	testbin.Eventually(t, 20*time.Second, "the record to be queued", func() bool {
		got, err := f.ex.store.get(t.Context(), ti.ID)
		return err == nil && got.State == activity.StateQueued && got.ActivityID == next
	})
	act, m := f.take("q")
	_ = m.Ack()
	if act.ID != next || act.TI.ID != ti.ID {
		t.Fatalf("activity %s of %s, want %s of %s", act.ID, act.TI.ID, next, ti.ID)
	}
}

// A submit whose record's create the executor gave up on while NATS was
// away (the submitter heard an error, and the activity was never sent: its
// queue's consumer could not be made), but which the NATS client sent
// anyway on reconnecting, leaves a task queued on an activity never
// published: the create is in doubt too, and the executor publishes the
// activity from the record read back.
func TestCreateWrittenAfterFailureStillPublishesItsActivity(t *testing.T) {
	t.Parallel()
	f, stop, restart := restartableFixture(t)

	stop()
	const id = "01900000-0000-7000-8000-00000000c0de"
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	_, err := f.ex.submit(ctx, activity.TaskSpec{Queue: "fresh", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}, id, "")
	cancel()
	if err == nil {
		t.Fatal("submitted while NATS was away")
	}
	restart()

	testbin.Eventually(t, 20*time.Second, "the record to be stored", func() bool {
		got, err := f.ex.store.get(t.Context(), id)
		return err == nil && got.State == activity.StateQueued
	})
	act, m := f.take("fresh")
	_ = m.Ack()
	if act.TI.ID != id {
		t.Fatalf("activity of %s, want %s", act.TI.ID, id)
	}
}

// The same create in doubt, its activity published first and dead-lettered
// before the record landed (a worker's …/run found no record three times,
// and terminated the activity), NATS up all along (only the executor was
// cut off): the activity's id is in the stream's duplicate window, so
// publishing it again under that id would be dropped and the task stay
// queued for ever. The executor publishes it under an id of its own.
func TestCreateInDoubtAfterItsActivityWasDeadLettered(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	proxy := newCutProxy(t, ns.Addr().String())
	enc := natstest.Connect(t, proxy)
	qc, err := queue.New(t.Context(), enc, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f := startOn(t, qc, Config{})
	// The test's own client, on the server directly.
	direct, err := queue.New(t.Context(), natstest.Connect(t, ns), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := direct.ActivityConsumer(t.Context(), "dl")
	if err != nil {
		t.Fatal(err)
	}
	const id = "01900000-0000-7000-8000-0000000dead1"
	// The first publish of the activity (its message id is the activity's
	// id, the try's first dispatch), taken and terminated.
	if err := queuetest.Publish(t.Context(), direct.Conn(), queue.ActivitySubject("dl"), []byte("the first copy"), id+".1"); err != nil {
		t.Fatal(err)
	}
	first, err := queuetest.Next(cons, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Term(); err != nil {
		t.Fatal(err)
	}

	proxy.cut()
	testbin.Eventually(t, 10*time.Second, "the executor's connection to see NATS gone", func() bool { return !enc.IsConnected() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	_, err = f.ex.submit(ctx, activity.TaskSpec{Queue: "dl", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}, id, "")
	cancel()
	if err == nil {
		t.Fatal("submitted while cut off from NATS")
	}
	proxy.heal()

	testbin.Eventually(t, 20*time.Second, "the record to be stored", func() bool {
		got, err := f.ex.store.get(t.Context(), id)
		return err == nil && got.State == activity.StateQueued && got.ActivityID == id+".1"
	})
	m, err := queuetest.Next(cons, 15*time.Second)
	if err != nil {
		t.Fatalf("the activity was not published again: %v", err)
	}
	a, err := activity.Decode(m.Data())
	if err != nil || a.ExecuteTask == nil || a.ExecuteTask.TI.ID != id || a.ExecuteTask.ID != id+".1" {
		t.Fatalf("activity %q (%v), want %s.1 of %s", m.Data(), err, id, id)
	}
	_ = m.Ack()
}

// A try's end whose write the executor gave up on while NATS was away, but
// which was stored on reconnecting, ran none of what follows an end: the
// worker's report failed (and a repeat is refused, the try being over
// already), so the on_success callback was never queued. The executor
// runs what follows the end from the record read back.
func TestEndWrittenAfterFailureStillRunsItsCallbacks(t *testing.T) {
	t.Parallel()
	f, stop, restart := restartableFixture(t)
	ti, tc := f.running(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}},
		Callbacks: activity.Callbacks{OnSuccess: &activity.Callback{Queue: "cb", Entrypoint: activity.Entrypoint{Command: []string{"cb"}}}}})
	stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	err := tc.State(ctx, execution.StateRequest{State: activity.StateSuccess})
	cancel()
	if err == nil {
		t.Fatal("ended while NATS was away")
	}
	restart()

	testbin.Eventually(t, 20*time.Second, "the record to be success", func() bool {
		got, err := f.ex.store.get(t.Context(), ti.ID)
		return err == nil && got.State == activity.StateSuccess
	})
	// The consumer lives in the server's memory: made anew after the restart.
	cons, err := f.q.ActivityConsumer(t.Context(), "cb")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := queuetest.Next(cons, 15*time.Second)
	if err != nil {
		t.Fatalf("the on_success callback was not queued: %v", err)
	}
	a, err := activity.Decode(cm.Data())
	if err != nil || a.RunCallback == nil || a.RunCallback.On != "on_success" || a.RunCallback.TI.ID != ti.ID {
		t.Fatalf("activity %s (%v), want ti %s's on_success callback", cm.Data(), err, ti.ID)
	}
}
