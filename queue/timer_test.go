package queue_test

import (
	"testing"
	"time"

	"github.com/taskwire/taskwire/queue"
)

type delivery struct {
	subject string
	data    string
	at      time.Time
}

func consumeTimers(t *testing.T, c *queue.Client, kind string) <-chan delivery {
	t.Helper()
	got := make(chan delivery, 10)
	cc, err := c.ConsumeTimers(testContext(t), kind, func(m queue.Delivery) {
		now := time.Now()
		if err := m.Ack(); err != nil {
			t.Errorf("Ack: %v", err)
		}
		got <- delivery{m.Subject(), string(m.Data()), now}
	})
	if err != nil {
		t.Fatalf("ConsumeTimers: %v", err)
	}
	t.Cleanup(cc.Stop)
	return got
}

func TestScheduleTimerFiresNotBeforeAt(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	got := consumeTimers(t, c, "retry")

	at := time.Now().Add(300 * time.Millisecond)
	if err := c.ScheduleTimer(ctx, "retry", "ti1-try2", at, []byte("wake")); err != nil {
		t.Fatalf("ScheduleTimer: %v", err)
	}
	select {
	case d := <-got:
		if d.at.Before(at) {
			t.Errorf("delivered at %s, before %s", d.at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		}
		if d.subject != "timer.retry" || d.data != "wake" {
			t.Errorf("delivered %s %q, want timer.retry wake", d.subject, d.data)
		}
	case <-ctx.Done():
		t.Fatal("timer not delivered")
	}
	// The schedule message is purged once it fired, and the fired timer is
	// acked: the work-queue stream ends up empty.
	st, err := c.JetStream().Stream(ctx, queue.StreamTimers)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	for {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatalf("info: %v", err)
		}
		if info.State.Msgs == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("TIMERS still holds %d messages", info.State.Msgs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestScheduleTimerPastIsImmediate(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	got := consumeTimers(t, c, "due")

	if err := c.ScheduleTimer(ctx, "due", "t1", time.Now().Add(-time.Hour), []byte("now")); err != nil {
		t.Fatalf("ScheduleTimer: %v", err)
	}
	select {
	case d := <-got:
		if d.subject != "timer.due" || d.data != "now" {
			t.Errorf("delivered %s %q", d.subject, d.data)
		}
	case <-ctx.Done():
		t.Fatal("timer not delivered")
	}
}

func TestScheduleTimerRejectsBadNames(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	if err := c.ScheduleTimer(ctx, "Bad", "id", time.Now(), nil); err == nil {
		t.Error("bad kind accepted")
	}
	if err := c.ScheduleTimer(ctx, "ok", "a.b", time.Now(), nil); err == nil {
		t.Error("id with a dot accepted")
	}
}
