package triggerer

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// Two limiters on one bucket (two triggerers) share a key's limit: 60
// requests at 50/s take at least 59/50 s whoever asks, at most 2 are in
// flight, and an unlimited key goes at once.
func TestRateLimiterSharedAcrossTriggerers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	kv := f.q.Bucket(queue.BucketRateLimits)
	b, _ := json.Marshal(activity.RateLimit{Key: "h:1", RPS: 50, Concurrent: 2})
	if _, err := kv.Put(t.Context(), queue.RateLimitKey("h:1"), b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var limiters []*rateLimiter
	var wg sync.WaitGroup
	var limited atomic.Int64
	for range 2 {
		l := newRateLimiter(kv, slog.New(slog.DiscardHandler))
		l.onLimit = func(string) { limited.Add(1) }
		ready := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.run(ctx, ready)
		}()
		<-ready
		limiters = append(limiters, l)
	}
	defer func() { cancel(); wg.Wait() }()

	if rel, err := limiters[0].Acquire(t.Context(), "other"); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
	const n = 60
	var inflight, maxIn atomic.Int64
	start := time.Now()
	var rg sync.WaitGroup
	for i := range n {
		rg.Add(1)
		go func() {
			defer rg.Done()
			rel, err := limiters[i%2].Acquire(t.Context(), "h:1")
			if err != nil {
				t.Error(err)
				return
			}
			in := inflight.Add(1)
			for {
				m := maxIn.Load()
				if in <= m || maxIn.CompareAndSwap(m, in) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			inflight.Add(-1)
			rel()
		}()
	}
	rg.Wait()
	took := time.Since(start)
	if min := time.Duration(n-1) * time.Second / 50; took < min {
		t.Errorf("%d requests at 50/s took %s, less than %s", n, took, min)
	}
	if maxIn.Load() > 2 {
		t.Errorf("%d in flight, limit 2", maxIn.Load())
	}
	if limited.Load() == 0 {
		t.Error("no request was counted as rate limited")
	}
	t.Logf("%d requests through two limiters at 50/s in %s, at most %d in flight", n, took.Round(time.Millisecond), maxIn.Load())
}
