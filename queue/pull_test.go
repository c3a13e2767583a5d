package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/taskwire/taskwire/queue"
)

// abandonPull starts a pull request on p that waits 20 s on the server
// and gives up on it at once on the client's side, as a client whose
// timer ran out before a busy server took its request (issue 17, item 5);
// it returns once the server holds the request.
func abandonPull(t *testing.T, ctx context.Context, p *queue.Puller, cons queue.Consumer, n int) {
	t.Helper()
	fctx, cancel := context.WithCancel(ctx)
	b, err := p.Fetch(fctx, n, 20*time.Second)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	cancel()
	for d := range b.All() {
		t.Fatalf("abandoned pull yielded %s", d.Data())
	}
	waitFor(t, "the server to hold the abandoned pull", func() bool {
		info, err := cons.JetStream().Info(ctx)
		return err == nil && info.NumWaiting >= 1
	})
}

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

// fetchOne pulls one activity and reports it with how long it took.
func fetchOne(t *testing.T, ctx context.Context, p *queue.Puller) (queue.Delivery, time.Duration) {
	t.Helper()
	start := time.Now()
	b, err := p.Fetch(ctx, 1, 5*time.Second)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for d := range b.All() {
		return d, time.Since(start)
	}
	t.Fatalf("no activity after %v (err %v): the delivery to the abandoned pull was lost until the ack wait", time.Since(start), b.Err())
	return queue.Delivery{}, 0
}

// TestPullerLosesNoDeliveryToAnAbandonedPull: a message the server
// delivers to a pull request the client no longer waits for reaches the
// client all the same, and is handed on (to the pull under way) or given
// back at once; nats.go's Fetch left it unacknowledged until the ack wait
// (30 s) ran out.
func TestPullerLosesNoDeliveryToAnAbandonedPull(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
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

	t.Run("no pull under way: given back", func(t *testing.T) {
		abandonPull(t, ctx, p, cons, 1)
		if err := c.PublishActivity(ctx, "q", "a1", []byte("a1")); err != nil {
			t.Fatal(err)
		}
		// The server delivers it to the abandoned request, which nothing
		// waits for.
		waitFor(t, "the delivery to the abandoned pull", func() bool {
			n, err := cons.Deliveries(ctx)
			return err == nil && n >= 1
		})
		d, took := fetchOne(t, ctx, p)
		info, _ := d.Info()
		if string(d.Data()) != "a1" || info.Delivered != 2 {
			t.Fatalf("got %q delivered %d times; want a1, the second delivery (the first was given back)", d.Data(), info.Delivered)
		}
		if took > 3*time.Second {
			t.Errorf("the activity came after %v: not given back at once", took)
		}
		if err := d.Ack(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pull under way: handed to it", func(t *testing.T) {
		abandonPull(t, ctx, p, cons, 1)
		start := time.Now()
		b, err := p.Fetch(ctx, 1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PublishActivity(ctx, "q", "a2", []byte("a2")); err != nil {
			t.Fatal(err)
		}
		var got []queue.Delivery
		for d := range b.All() {
			got = append(got, d)
		}
		if len(got) != 1 || string(got[0].Data()) != "a2" {
			t.Fatalf("pull yielded %d activities, err %v; want a2", len(got), b.Err())
		}
		if info, _ := got[0].Info(); info.Delivered != 1 {
			t.Errorf("a2 delivered %d times; want once (to the abandoned request, handed to the pull under way)", info.Delivered)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("the activity came after %v", took)
		}
		if err := got[0].Ack(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("more than the pull asked for: the rest given back", func(t *testing.T) {
		abandonPull(t, ctx, p, cons, 5)
		for _, id := range []string{"b1", "b2"} {
			if err := c.PublishActivity(ctx, "q", id, []byte(id)); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "both deliveries to the abandoned pull", func() bool {
			n, err := cons.Deliveries(ctx)
			return err == nil && n >= 4 // a1 twice, a2, then b1 and b2
		})
		seen := map[string]bool{}
		for range 2 {
			d, took := fetchOne(t, ctx, p)
			if took > 3*time.Second {
				t.Errorf("%s came after %v", d.Data(), took)
			}
			seen[string(d.Data())] = true
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if !seen["b1"] || !seen["b2"] {
			t.Fatalf("pulled %v; want b1 and b2", seen)
		}
	})
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
