package triggerer

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

func (tr *Triggerer) applyHeartbeat(e queue.Entry) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !e.IsPut() {
		tr.seen[e.Key()] = time.Time{} // said goodbye: dead at once
		return
	}
	tr.seen[e.Key()] = time.Now()
}

func (tr *Triggerer) maintainLoop(ctx context.Context) {
	t := time.NewTicker(tr.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := tr.beat(ctx); err != nil && ctx.Err() == nil {
				tr.log.Warn("heartbeat", "err", err)
			}
		case <-tr.kick:
		}
		tr.adoptOrphans(ctx)
	}
}

func (tr *Triggerer) beat(ctx context.Context) error {
	host, _ := os.Hostname()
	held := tr.Held()
	hb := activity.TriggererHeartbeat{ID: tr.cfg.ID, Hostname: host, Capacity: tr.cfg.Capacity, Held: held,
		At: time.Now().UTC(), StartedAt: tr.started.UTC()}
	if _, err := tr.hb.Put(ctx, tr.cfg.ID, mustJSON(hb)); err != nil {
		return fmt.Errorf("triggerer: heartbeat: %w", err)
	}
	return nil
}

// alive says whether triggerer id counts as alive; tr.mu is held.
func (tr *Triggerer) alive(id string, now time.Time) bool {
	if id == tr.cfg.ID {
		return true
	}
	seen, ok := tr.seen[id]
	if !ok {
		seen = tr.started // unknown: give it the benefit of the doubt from our start
	}
	return now.Sub(seen) < tr.cfg.DeadAfter
}
