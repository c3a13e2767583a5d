package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

// unservedAfter is how long submit --wait lets a task sit queued before it
// looks for a live worker serving its queue, and then how often it looks
// again.
var unservedAfter = 3 * time.Second

// warnUnserved says once per queue, on stderr, when a queue of tis has no
// live worker (GET /api/v1/queues): a task there sits queued until one
// comes. It looks after unservedAfter and then every unservedAfter until
// ctx ends (the wait is over) or every queue was named; an API error only
// skips a look.
func (c *cli) warnUnserved(ctx context.Context, api *client.Client, tis []*activity.TaskInstance, stderr io.Writer) {
	left := map[string]bool{}
	for _, ti := range tis {
		left[ti.Queue] = true
	}
	t := time.NewTicker(unservedAfter)
	defer t.Stop()
	for len(left) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qs, err := api.Queues(ctx)
		if err != nil {
			continue
		}
		workers := map[string]int{}
		for _, q := range qs {
			workers[q.Name] = q.Workers
		}
		for _, q := range sortedKeys(left) {
			if workers[q] == 0 && ctx.Err() == nil {
				fmt.Fprintf(stderr, "no live worker serves queue %q (executor queues)\n", q)
			}
			if workers[q] == 0 {
				delete(left, q)
			}
		}
	}
}

// lockedWriter serializes writes to w: submit --wait's warning and its
// progress lines share stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
