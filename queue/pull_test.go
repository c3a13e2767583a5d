package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskwire/taskwire/queue"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPullerGivesBackWhatAnAbandonedPullReceived forces the race of issue
// 17 (a task started exactly 30 s late): the server delivers an activity
// to a pull, and the client gives the pull up before it reads it. nats.go's
// Fetch dropped such a delivery unread (its buffer, or its inbox once
// unsubscribed) and JetStream sent it again only after the ack wait; the
// Puller gives it back at once.
func TestPullerGivesBackWhatAnAbandonedPullReceived(t *testing.T) {
	t.Parallel()
	const ackWait = 30 * time.Second
	c := newClient(t, queue.Config{ActivityAckWait: ackWait})
	ctx := testContext(t)
	cons, err := c.ActivityConsumer(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.ActivityPuller("q")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	fctx, cancel := context.WithCancel(ctx)
	b, err := p.Fetch(fctx, 1, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to hold the pull", func() bool {
		info, err := cons.JetStream().Info(ctx)
		return err == nil && info.NumWaiting == 1
	})
	if err := c.PublishActivity(ctx, "q", "a1", []byte("a1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delivery to the pull", func() bool {
		n, err := cons.Deliveries(ctx)
		return err == nil && n == 1
	})
	// The client gives up just as the activity came.
	cancel()
	for d := range b.All() {
		t.Fatalf("abandoned pull yielded %s", d.Data())
	}

	start := time.Now()
	b, err = p.Fetch(ctx, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []queue.Delivery
	for d := range b.All() {
		got = append(got, d)
	}
	took := time.Since(start)
	if len(got) != 1 {
		t.Fatalf("the next pull got %d activities in %v (err %v): the abandoned pull's delivery waits for the ack wait (%v)", len(got), took, b.Err(), ackWait)
	}
	info, _ := got[0].Info()
	if string(got[0].Data()) != "a1" || info.Delivered != 2 {
		t.Errorf("got %q delivered %d times; want a1 on its second delivery", got[0].Data(), info.Delivered)
	}
	if took > 3*time.Second {
		t.Errorf("a1 came back after %v: not given back at once", took)
	}
	if err := got[0].Ack(); err != nil {
		t.Fatal(err)
	}
	// The abandoned pull was forgotten by the server: it takes nothing more.
	if err := c.PublishActivity(ctx, "q", "a2", []byte("a2")); err != nil {
		t.Fatal(err)
	}
	b, err = p.Fetch(ctx, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for d := range b.All() {
		if info, _ := d.Info(); string(d.Data()) != "a2" || info.Delivered != 1 {
			t.Errorf("got %q delivered %d times; want a2 on its first delivery", d.Data(), info.Delivered)
		}
		_ = d.Ack()
	}
}

// TestPullerEndsOnTheServersWord: a pull with nothing to deliver ends at
// its expiry (408) or at once without waiting (404), without an error.
func TestPullerEndsOnTheServersWord(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	if _, err := c.ActivityConsumer(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	p, err := c.ActivityPuller("q")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	for _, wait := range []time.Duration{0, 300 * time.Millisecond} {
		start := time.Now()
		b, err := p.Fetch(ctx, 2, wait)
		if err != nil {
			t.Fatal(err)
		}
		for d := range b.All() {
			t.Fatalf("wait %v: got %s from an empty queue", wait, d.Data())
		}
		if err := b.Err(); err != nil {
			t.Errorf("wait %v: err %v", wait, err)
		}
		if took := time.Since(start); took < wait || took > wait+time.Second {
			t.Errorf("wait %v: pull ended after %v", wait, took)
		}
	}
}
