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

// BenchmarkDeferralRoundTrip is the executor's part of a deferral, one
// task at a time, against an executor on an in-process NATS server: a
// running try's …/state deferred, its trigger pulled (as a triggerer
// pulls it), the trigger's event published, the resumed activity pulled
// (as a worker pulls it) and its …/run answered. ns/op is that round
// trip without a triggerer's claim, a worker or a process; the task's
// submit and first …/run before it are not timed.
func BenchmarkDeferralRoundTrip(b *testing.B) {
	f := newBenchFixture(b)
	ec, err := execution.NewClient(execution.ClientConfig{URL: f.srv.URL, RetryMax: 1})
	if err != nil {
		b.Fatal(err)
	}
	trigCons, err := f.q.TriggerConsumer(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	actCons, err := f.q.ActivityConsumer(b.Context(), "q")
	if err != nil {
		b.Fatal(err)
	}
	// pull has a pull request waiting on c, as a triggerer's or a
	// worker's is, and returns where its message will come.
	pull := func(c queue.Consumer) <-chan queue.Delivery {
		ch := make(chan queue.Delivery, 1)
		go func() {
			m, err := queuetest.Next(c, 10*time.Second)
			if err != nil {
				b.Error(err)
			}
			ch <- m
		}()
		return ch
	}
	take := func(c queue.Consumer, ch <-chan queue.Delivery) *activity.ExecuteTask {
		m := <-ch
		a, err := activity.Decode(m.Data())
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Ack()
		return a.ExecuteTask
	}
	// Where the round trip goes, step by step (mean ms per op).
	steps := []string{"state-ms", "trigger-ms", "event-ms", "activity-ms", "run-ms"}
	spent := make([]time.Duration, len(steps))
	var at time.Time
	step := func(i int) {
		now := time.Now()
		spent[i] += now.Sub(at)
		at = now
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		first := pull(actCons)
		ti, err := f.ex.Submit(b.Context(), activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
		if err != nil {
			b.Fatal(err)
		}
		act := take(actCons, first)
		req := runReq
		req.ActivityID = act.ID
		rr, err := ec.Run(b.Context(), act.Token, ti.ID, req)
		if err != nil {
			b.Fatal(err)
		}
		trig := pull(trigCons)
		resumed := pull(actCons)
		b.StartTimer()
		at = time.Now()

		err = ec.Task(ti.ID, rr.Token).State(b.Context(), execution.StateRequest{State: activity.StateDeferred,
			Trigger: &activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, NextMethod: "resume"})
		if err != nil {
			b.Fatal(err)
		}
		step(0)
		m := <-trig
		var t activity.Trigger
		if err := json.Unmarshal(m.Data(), &t); err != nil {
			b.Fatal(err)
		}
		_ = m.Ack()
		step(1)
		ev, _ := json.Marshal(activity.TriggerEvent{TriggerID: t.ID, TIID: t.TIID, Try: t.Try, Payload: "x"})
		if err := queuetest.Publish(b.Context(), f.q.Conn(), queue.EventSubject(t.TIID), ev, t.ID); err != nil {
			b.Fatal(err)
		}
		step(2)
		act = take(actCons, resumed)
		step(3)
		req.ActivityID = act.ID
		if _, err := ec.Run(b.Context(), act.Token, ti.ID, req); err != nil {
			b.Fatal(err)
		}
		step(4)
	}
	for i, name := range steps {
		b.ReportMetric(float64(spent[i].Microseconds())/1000/float64(b.N), name)
	}
}
