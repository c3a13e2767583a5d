package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// A new try starts without the XComs of the try before it (as Airflow's
// …/run clears them), other tasks' XComs stay, and a run resumed from a
// deferral keeps what the try pushed before it deferred.
func TestNewTryStartsWithoutEarlierXComs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ctx := t.Context()
	xk := func(task, key string) execution.XComKey {
		return execution.XComKey{DagID: "etl", RunID: "run1", TaskID: task, Key: key, MapIndex: -1}
	}
	spec := taskSpec("q", "etl", "run1", "route")
	spec.RetryPolicy = activity.RetryPolicy{Retries: 1, Delay: activity.Duration(time.Millisecond)}
	spec.ExecutionTimeout = activity.Duration(time.Hour)
	ti, t1 := f.running(spec)
	_, other := f.running(taskSpec("q2", "etl", "run1", "load"))
	for _, key := range []string{"skipmixin_key", "return_value"} {
		if err := t1.SetXCom(ctx, xk("route", key), map[string]any{"followed": []string{"a"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.SetXCom(ctx, xk("load", "return_value"), 42); err != nil {
		t.Fatal(err)
	}
	if err := t1.State(ctx, execution.StateRequest{State: activity.StateUpForRetry, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}

	act, m := f.take("q")
	_ = m.Ack()
	if act.TI.TryNumber != 2 {
		t.Fatalf("retry activity %+v", act.TI)
	}
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(ctx, act.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	t2 := f.ec.Task(ti.ID, rr.Token)
	for _, key := range []string{"skipmixin_key", "return_value"} {
		if v, err := t2.XCom(ctx, xk("route", key)); !errors.Is(err, execution.ErrNotFound) {
			t.Errorf("try 2 reads try 1's xcom %s: %v, %v; want 404", key, v, err)
		}
	}
	if v, err := t2.XCom(ctx, xk("load", "return_value")); err != nil || fmt.Sprint(v) != "42" {
		t.Errorf("another task's xcom after the clear: %v, %v", v, err)
	}

	// Try 2 pushes, defers, and is resumed: what it pushed is still there.
	if err := t2.SetXCom(ctx, xk("route", "return_value"), "mine"); err != nil {
		t.Fatal(err)
	}
	trig := activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}
	if err := t2.State(ctx, execution.StateRequest{State: activity.StateDeferred, Trigger: &trig, NextMethod: "resume"}); err != nil {
		t.Fatal(err)
	}
	got := f.eventually("deferred", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateDeferred }, ti.ID)
	ev, _ := json.Marshal(activity.TriggerEvent{TriggerID: got.Trigger.ID, TIID: ti.ID, Try: 2, Payload: "yes"})
	if err := queuetest.Publish(ctx, f.q.Conn(), queue.EventSubject(ti.ID), ev, "ev"); err != nil {
		t.Fatal(err)
	}
	act3, m3 := f.take("q")
	_ = m3.Ack()
	if act3.NextMethod != "resume" {
		t.Fatalf("resume activity %+v", act3)
	}
	req.ActivityID = act3.ID
	rr3, err := f.ec.Run(ctx, act3.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.ec.Task(ti.ID, rr3.Token).XCom(ctx, xk("route", "return_value")); err != nil || v != "mine" {
		t.Errorf("resumed try's own xcom: %v, %v; want kept", v, err)
	}
}
