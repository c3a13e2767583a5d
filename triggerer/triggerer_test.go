package triggerer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type fixture struct {
	t  *testing.T
	q  *queue.Client
	ev queue.Consumer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns := natstest.RunServer(t)
	q, err := queue.New(t.Context(), natstest.Connect(t, ns), queue.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := q.EventConsumer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, q: q, ev: ev}
}

func (f *fixture) start(id string, capacity int, mods ...func(*Config)) *Triggerer {
	f.t.Helper()
	cfg := Config{Queue: f.q, ID: id, Capacity: capacity, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics(prometheus.NewRegistry())}
	for _, m := range mods {
		m(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := tr.Start(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = tr.Stop(context.Background()) })
	return tr
}

var seq int

func (f *fixture) publish(kind string, kwargs map[string]any, timeout time.Duration) activity.Trigger {
	f.t.Helper()
	seq++
	t := activity.Trigger{ID: fmt.Sprintf("ti-%d.1", seq), Classpath: kind, Kind: kind, Kwargs: kwargs,
		Timeout: activity.Duration(timeout), TIID: fmt.Sprintf("ti-%d", seq), Try: 1, DeferredAt: time.Now().UTC()}
	b, _ := json.Marshal(t)
	if err := f.q.PublishTrigger(f.t.Context(), t.ID, b); err != nil {
		f.t.Fatal(err)
	}
	return t
}

// next returns the next fired event.
func (f *fixture) next(wait time.Duration) (*activity.TriggerEvent, error) {
	m, err := queuetest.Next(f.ev, wait)
	if err != nil {
		return nil, err
	}
	_ = m.Ack()
	return activity.DecodeTriggerEvent(m.Data())
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFiresPublishesAndRetires(t *testing.T) {
	f := newFixture(t)
	tr := f.start("t1", 10)
	moment := time.Now().Add(100 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	trig := f.publish("datetime", map[string]any{"moment": moment}, 0)
	ev, err := f.next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TriggerID != trig.ID || ev.TIID != trig.TIID || ev.Error != "" || ev.FiredBy != "t1" {
		t.Fatalf("event %+v, want trigger %s fired by t1", ev, trig.ID)
	}
	if at, _ := time.Parse(time.RFC3339Nano, moment); ev.FiredAt.Before(at) {
		t.Errorf("fired at %s, before its moment %s", ev.FiredAt, moment)
	}
	eventually(t, "the claim to be retired", func() bool {
		_, err := f.q.Bucket(queue.BucketTriggers).Get(t.Context(), trig.ID)
		return errors.Is(err, queue.ErrKeyNotFound)
	})
	eventually(t, "no trigger held", func() bool { return tr.Held() == 0 })
}

func TestTimeoutFiresAnError(t *testing.T) {
	f := newFixture(t)
	f.start("t1", 10)
	trig := f.publish("event", map[string]any{"name": "never"}, 200*time.Millisecond)
	ev, err := f.next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TriggerID != trig.ID || ev.Error == "" {
		t.Fatalf("event %+v, want a timeout error", ev)
	}
}

func TestExternalEventSentBeforeTheTriggerStarts(t *testing.T) {
	f := newFixture(t)
	trig := f.publish("event", map[string]any{"name": "go"}, 0)
	sent := activity.ExternalEvent{Name: "go", Payload: "now", SentAt: time.Now().UTC()}
	b, _ := json.Marshal(sent)
	if _, err := f.q.Bucket(queue.BucketExternalEvents).Put(t.Context(), queue.ExternalEventKey("go"), b); err != nil {
		t.Fatal(err)
	}
	f.start("t1", 10)
	ev, err := f.next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TriggerID != trig.ID || fmt.Sprint(ev.Payload) != "map[name:go payload:now]" {
		t.Fatalf("event %+v, want trigger %s with the payload", ev, trig.ID)
	}
	// An event sent before a task deferred does not fire it.
	f.publish("event", map[string]any{"name": "go"}, 0)
	if ev, err := f.next(300 * time.Millisecond); err == nil {
		t.Fatalf("a stale event fired a later trigger: %+v", ev)
	}
}

func TestCapacityBoundsClaims(t *testing.T) {
	f := newFixture(t)
	tr := f.start("t1", 3)
	for i := range 5 {
		f.publish("event", map[string]any{"name": fmt.Sprintf("e%d", i)}, 0)
	}
	eventually(t, "3 triggers held", func() bool { return tr.Held() == 3 })
	time.Sleep(200 * time.Millisecond) // it must not take more (a bound, not a wait)
	if n := tr.Held(); n != 3 {
		t.Fatalf("holds %d, want 3", n)
	}
	// One fires: a slot is free and the next trigger is claimed.
	held := tr.Snapshot()
	var name string
	for _, trig := range held {
		name = trig.Kwargs["name"].(string)
		break
	}
	b, _ := json.Marshal(activity.ExternalEvent{Name: name, SentAt: time.Now().UTC()})
	if _, err := f.q.Bucket(queue.BucketExternalEvents).Put(t.Context(), queue.ExternalEventKey(name), b); err != nil {
		t.Fatal(err)
	}
	if _, err := f.next(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a fourth trigger claimed", func() bool {
		s := tr.Snapshot()
		_, still := s[name]
		return len(s) == 3 && !still
	})
}

func TestStopHandsBackAndAnotherTakesOver(t *testing.T) {
	f := newFixture(t)
	// A dead-after far above the hand-back's time, even on a loaded CI box
	// with -race (the default 500ms left 400ms to tell them apart).
	const deadAfter = 6 * time.Second
	slow := func(c *Config) { c.DeadAfter = deadAfter }
	a := f.start("a", 100, slow)
	for i := range 10 {
		f.publish("event", map[string]any{"name": fmt.Sprintf("h%d", i)}, 0)
	}
	eventually(t, "a to hold 10", func() bool { return a.Held() == 10 })
	b := f.start("b", 100, slow)
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, "b to hold 10", func() bool { return b.Held() == 10 })
	if d := time.Since(start); d > deadAfter/2 {
		t.Errorf("b took %s to take handed-back triggers, want well under a's dead-after (%s)", d, deadAfter)
	}
}

func TestLostClaimStopsTheRun(t *testing.T) {
	f := newFixture(t)
	a := f.start("a", 100)
	trig := f.publish("event", map[string]any{"name": "x"}, 0)
	eventually(t, "a to hold it", func() bool { return a.Held() == 1 })
	kv := f.q.Bucket(queue.BucketTriggers)
	e, err := kv.Get(t.Context(), trig.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claim{Owner: "someone-else", Trigger: trig})
	// Someone else's heartbeat, so a does not take it back.
	hb, _ := json.Marshal(activity.TriggererHeartbeat{ID: "someone-else", At: time.Now()})
	if _, err := f.q.Bucket(queue.BucketTriggerers).Put(t.Context(), "someone-else", hb); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(t.Context(), trig.ID, b, e.Revision()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to let it go", func() bool { return a.Held() == 0 })
	// The other one goes silent: a adopts it after dead-after.
	eventually(t, "a to adopt it from a dead owner", func() bool { return a.Held() == 1 })
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no queue: accepted")
	}
	f := newFixture(t)
	for _, cfg := range []Config{
		{Queue: f.q, ID: "has space"},
		{Queue: f.q, ID: "x", HeartbeatInterval: time.Second, DeadAfter: time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v: accepted", cfg)
		}
	}
}
