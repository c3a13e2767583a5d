package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// queueBacklog is the queue the backlog phase fills and nobody serves.
const queueBacklog = "benchbacklog"

// backlogWindow bounds the backlog's publishes awaiting their
// acknowledgement; below nats.go's default limit of async publishes
// pending (4,000), past which PublishAsync stalls and fails.
const backlogWindow = 1024

// Backlog is the backlog phase: Messages activities left pending on a queue
// no worker serves, then the command throughput phase run again beside it.
type Backlog struct {
	Messages int `json:"messages"`
	// PublishSeconds is how long publishing the backlog took.
	PublishSeconds float64    `json:"publish_seconds"`
	Command        Throughput `json:"command"`
}

// queueNames are the n queues of the many-queues phase.
func queueNames(n int) []string {
	qs := make([]string, n)
	for i := range qs {
		qs[i] = fmt.Sprintf("bq%03d", i)
	}
	return qs
}

// manyQueues runs the command throughput phase with its tasks spread round
// robin over n queues, all served by one more worker of the same
// concurrency (the cluster's other workers serve none of them), after one
// task per queue not counted.
func manyQueues(ctx context.Context, c *cluster, cfg Config, n int) (_ Throughput, err error) {
	qs := queueNames(n)
	w, err := c.startWorker(ctx, cfg, "bench-worker-queues", qs)
	if err != nil {
		return Throughput{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if serr := w.Stop(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop worker: %w", serr))
		}
	}()
	base := commandSpec(cfg.TaskBin, ModeNoop, "")
	spec := func(i int) activity.TaskSpec {
		s := base
		s.Queue = qs[i%len(qs)]
		return s
	}
	// Not counted: one task per queue first, so that what is measured is
	// the steady state, not the executor setting up each queue's consumer
	// on its first activity there.
	if _, err := throughputOf(ctx, c, spec, len(qs), cfg.Inflight); err != nil {
		return Throughput{}, fmt.Errorf("warm-up: %w", err)
	}
	return throughputOf(ctx, c, spec, cfg.Tasks, cfg.Inflight)
}

// publishBacklog publishes n activities on queueBacklog, whose consumer it
// creates first as a worker serving it once would, and counts them in done.
// The activities are well formed; no worker will run them.
func publishBacklog(ctx context.Context, q *queue.Client, n int, done *atomic.Int64) (time.Duration, error) {
	if _, err := q.ActivityConsumer(ctx, queueBacklog); err != nil {
		return 0, err
	}
	// An activity of the usual size (a JWT is some 300 bytes); no worker
	// will run it.
	a := activity.Activity{Kind: activity.KindExecuteTask, ExecuteTask: &activity.ExecuteTask{
		ID: "backlog.1", Token: strings.Repeat("t", 300), Queue: queueBacklog, QueuedAt: time.Now(),
		TI:         activity.TI{ID: "backlog", DagID: "bench", TaskID: "backlog", RunID: "bench", TryNumber: 1},
		Entrypoint: activity.Entrypoint{Command: []string{"true"}},
	}}
	data, err := a.Marshal()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = q.PublishActivities(ctx, queueBacklog, n, backlogWindow,
		func(i int) (string, []byte) { return fmt.Sprintf("backlog-%d", i), data },
		func() { done.Add(1) })
	if err != nil {
		return 0, fmt.Errorf("publish backlog: %w", err)
	}
	return time.Since(start), nil
}
