package queue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/taskwire/taskwire/queue"
)

// Lists of the worker registry are complete while every worker rewrites
// its entry: the executor's GET /api/v1/workers came back a few short of
// 1,000 (and of 100) with a watch's "initial values done".
func TestEntriesAreCompleteWhileRewritten(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	kv := c.Bucket(queue.BucketWorkers)
	const n = 300
	for i := range n {
		if _, err := kv.Put(ctx, queue.WorkerKey(fmt.Sprintf("w%d", i)), []byte("beat")); err != nil {
			t.Fatal(err)
		}
	}
	// Every worker heartbeats, over and over, while the lists run.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; ; i = (i + 4) % n {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = kv.Put(ctx, queue.WorkerKey(fmt.Sprintf("w%d", i)), []byte("beat"))
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for round := range 15 {
		got, err := kv.Entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("round %d: %d entries, want %d", round, len(got), n)
		}
	}
}

// A consumer made with the server's default MaxWaiting (512: the 513th
// worker's pulls were refused) is made anew with room for every worker.
func TestActivityConsumerMaxWaiting(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	if _, err := c.JetStream().CreateConsumer(ctx, queue.StreamActivities, jetstream.ConsumerConfig{
		Durable: queue.ActivityConsumerName("old"), FilterSubject: queue.ActivitySubject("old"),
		AckPolicy: jetstream.AckExplicitPolicy, MemoryStorage: true,
	}); err != nil {
		t.Fatal(err)
	}
	cons, err := c.ActivityConsumer(ctx, "old")
	if err != nil {
		t.Fatalf("ActivityConsumer over a consumer of 512 waiting pulls: %v", err)
	}
	if got := cons.JetStream().CachedInfo().Config.MaxWaiting; got != queue.ActivityMaxWaiting {
		t.Fatalf("MaxWaiting %d, want %d", got, queue.ActivityMaxWaiting)
	}
}
