package queue_test

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/queue"
)

// A watch stopped while its entries are still coming, unread, leaves no
// goroutine behind: nats.go's handler blocks sending into a full channel
// until somebody reads it (CI's goleak found one after the registry test).
// Not parallel: goleak looks at every goroutine of the process.
func TestWatchStoppedUnreadLeavesNoGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	kv := c.Bucket(queue.BucketWorkers)
	for i := range 600 {
		if _, err := kv.Put(ctx, queue.WorkerKey(fmt.Sprintf("w%d", i)), []byte("beat")); err != nil {
			t.Fatal(err)
		}
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A test that fails before Stop stops it too (cleanups run last
	// first, before goleak's check), so goleak reports no second failure.
	t.Cleanup(func() { _ = w.Stop() })
	// Let the watch fill its channel: read one entry, so delivery has begun.
	<-w.Updates()
	for i := range 600 {
		if _, err := kv.Put(ctx, queue.WorkerKey(fmt.Sprintf("w%d", i)), []byte("again")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Entries stops its own watch early too (its keys came before the rest).
	if _, err := kv.Entries(ctx); err != nil {
		t.Fatal(err)
	}
}
