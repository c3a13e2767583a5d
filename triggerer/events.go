package triggerer

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// externalEvents serves "event" triggers from one watch of the
// external_events bucket: a waiter fires on the first event of its name
// sent at or after it deferred, including one sent before the triggerer
// started it.
type externalEvents struct {
	kv  queue.Bucket
	log *slog.Logger

	mu      sync.Mutex
	last    map[string]activity.ExternalEvent
	waiters map[string]map[*waiter]struct{}
}

type waiter struct {
	since time.Time
	fn    func(any)
}

func newExternalEvents(kv queue.Bucket, log *slog.Logger) *externalEvents {
	return &externalEvents{kv: kv, log: log, last: make(map[string]activity.ExternalEvent), waiters: make(map[string]map[*waiter]struct{})}
}

// start watches the bucket until runCtx ends; it returns once the current
// events are loaded.
func (x *externalEvents) start(ctx, runCtx context.Context, wg *sync.WaitGroup) error {
	return watchKV(ctx, runCtx, wg, x.kv, func(e queue.Entry) {
		if e.IsPut() {
			x.apply(e.Value())
		}
	})
}

func (x *externalEvents) apply(b []byte) {
	var ev activity.ExternalEvent
	if err := json.Unmarshal(b, &ev); err != nil || ev.Name == "" {
		x.log.Warn("undecodable external event", "err", err)
		return
	}
	x.mu.Lock()
	x.last[ev.Name] = ev
	var due []*waiter
	for w := range x.waiters[ev.Name] {
		if !ev.SentAt.Before(w.since) {
			due = append(due, w)
			delete(x.waiters[ev.Name], w)
		}
	}
	if len(x.waiters[ev.Name]) == 0 {
		delete(x.waiters, ev.Name)
	}
	x.mu.Unlock()
	for _, w := range due {
		go w.fn(ev.Payload)
	}
}

// Subscribe implements trigger.ExternalEvents.
func (x *externalEvents) Subscribe(name string, since time.Time, fn func(payload any)) (cancel func()) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if ev, ok := x.last[name]; ok && !ev.SentAt.Before(since) {
		go fn(ev.Payload)
		return func() {}
	}
	w := &waiter{since: since, fn: fn}
	if x.waiters[name] == nil {
		x.waiters[name] = make(map[*waiter]struct{})
	}
	x.waiters[name][w] = struct{}{}
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		delete(x.waiters[name], w)
		if len(x.waiters[name]) == 0 {
			delete(x.waiters, name)
		}
	}
}
