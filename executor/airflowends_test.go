package executor

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// An event with an end state (an Airflow trigger's TaskSkippedEvent …)
// ends its deferred task in that state, once, with the event's xcoms
// pushed, and nothing is resumed; a trigger deferred with
// end_from_trigger ends its task as success at a plain event.
func TestTriggerEndEventEndsTheTask(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	publish := func(ti *activity.TaskInstance, msgID string, ev activity.TriggerEvent) {
		b, _ := json.Marshal(ev)
		if err := queuetest.Publish(t.Context(), f.q.Conn(), queue.EventSubject(ti.ID), b, msgID); err != nil {
			t.Fatal(err)
		}
	}
	ti, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, 0)
	ev := activity.TriggerEvent{TriggerID: ti.Trigger.ID, TIID: ti.ID, Try: 1, End: activity.StateSkipped, XComs: map[string]any{"verdict": "skip"}}
	publish(ti, "end-1", ev)
	publish(ti, "end-2", ev)
	got := f.eventually("skipped", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateSkipped }, ti.ID)
	if got.TryNumber != 1 || got.Trigger != nil || got.Reason == "" {
		t.Errorf("ended record: try %d trigger %+v reason %q", got.TryNumber, got.Trigger, got.Reason)
	}
	ent, err := f.ex.xcom.Get(t.Context(), xcomKey(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex, "verdict"))
	if err != nil || string(ent.Value()) != `"skip"` {
		t.Errorf("the end event's xcom: %v, %v", ent, err)
	}

	ti2, _ := f.deferred(activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "y"}, EndFromTrigger: true}, 0)
	publish(ti2, "plain", activity.TriggerEvent{TriggerID: ti2.Trigger.ID, TIID: ti2.ID, Try: 1, Payload: "fired"})
	got = f.eventually("success", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateSuccess }, ti2.ID)
	if got.TryNumber != 1 || got.Reason != "" {
		t.Errorf("end_from_trigger record: try %d reason %q", got.TryNumber, got.Reason)
	}
	if act := f.tryTake("q", 500*time.Millisecond); act != nil {
		t.Fatalf("a task its trigger ended was resumed: %+v", act)
	}
}

// up_for_reschedule: the same try runs again at the reschedule date,
// consuming no retry; …/run tells the next run its reschedules.
func TestRescheduleKeepsTheTry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	act, m := f.take("q")
	_ = m.Ack()
	tok := f.start(act)
	err := f.ec.Task(ti.ID, tok).State(t.Context(), execution.StateRequest{State: activity.StateUpForReschedule})
	if err == nil {
		t.Fatal("up_for_reschedule without a reschedule_date accepted")
	}
	at := time.Now().Add(300 * time.Millisecond)
	if err := f.ec.Task(ti.ID, tok).State(t.Context(), execution.StateRequest{State: activity.StateUpForReschedule, RescheduleDate: &at}); err != nil {
		t.Fatal(err)
	}
	again, m := f.take("q")
	_ = m.Ack()
	if again.TI.TryNumber != 1 || again.ID == act.ID {
		t.Fatalf("rescheduled activity %+v, want a new dispatch of try 1", again)
	}
	req := runReq
	req.ActivityID = again.ID
	rr, err := f.ec.Run(t.Context(), again.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	if rr.RescheduleCount != 1 || rr.FirstRescheduleAt == nil || rr.TI.TryNumber != 1 {
		t.Errorf("run after a reschedule: %+v", rr)
	}
	f.end(ti.ID, rr.Token)
	got := f.eventually("success", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateSuccess }, ti.ID)
	if got.TryNumber != 1 || len(got.Tries) != 1 || got.RescheduleCount != 1 {
		t.Errorf("after the reschedule: try %d, %d tries, %d reschedules", got.TryNumber, len(got.Tries), got.RescheduleCount)
	}
}
