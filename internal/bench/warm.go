package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// queueGoWarm is the Go SDK runtime (the task binary in ModeSDK) in warm
// mode: one process per worker, Concurrency tasks at once.
const queueGoWarm = "go-warm"

// Warm is the warm-mode phase: no-op SDK tasks run in warm processes.
type Warm struct {
	Go *WarmRuntime `json:"go,omitempty"`
}

// WarmRuntime is one SDK's warm figures.
type WarmRuntime struct {
	Throughput
	// Latency is queued → success of one task at a time (submit to the
	// executor's end_date).
	Latency Latency `json:"latency"`
}

// goWarmSpec is a no-op task of the warm Go SDK runtime.
func goWarmSpec() activity.TaskSpec {
	return activity.TaskSpec{Queue: queueGoWarm, TaskID: "bench_sdk_warm", Entrypoint: activity.Entrypoint{Task: "noop"}}
}

// oneAtATime runs n tasks of spec one after the other and summarizes their
// queued → success times.
func oneAtATime(ctx context.Context, c *cluster, spec activity.TaskSpec, n int, done func()) (Latency, error) {
	ds := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		ti, err := c.api.Submit(ctx, spec)
		if err != nil {
			return Latency{}, fmt.Errorf("submit task %d: %w", i, err)
		}
		if _, err := c.tracker.succeeded(ctx, ti.ID); err != nil {
			return Latency{}, err
		}
		ds = append(ds, time.Since(start))
		done()
	}
	return summarize(ds), nil
}
