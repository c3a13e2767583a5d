package triggerer

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/queue"
)

func (tr *Triggerer) signalFreed() {
	select {
	case tr.freed <- struct{}{}:
	default:
	}
}

// free is how many more triggers fit.
func (tr *Triggerer) free() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.cfg.Capacity - len(tr.running)
}

func (tr *Triggerer) pullLoop(ctx context.Context, p *queue.Puller) {
	for ctx.Err() == nil {
		n := tr.free()
		if n <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-tr.freed:
			case <-time.After(fetchWait):
			}
			continue
		}
		batch, err := p.Fetch(ctx, min(n, fetchBatchMax), fetchWait)
		if err != nil {
			if ctx.Err() == nil {
				tr.log.Warn("fetch triggers", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(fetchWait):
				}
			}
			continue
		}
		// Claims are KV round trips: run a batch's concurrently.
		var g errgroup.Group
		g.SetLimit(claimConcurrency)
		for m := range batch.All() {
			g.Go(func() error {
				tr.onNew(ctx, m)
				return nil
			})
		}
		_ = g.Wait()
		if err := batch.Err(); err != nil && !errors.Is(err, queue.ErrNoMessages) && ctx.Err() == nil {
			tr.log.Debug("fetch triggers", "err", err)
		}
	}
}

// watch starts a watch of every key of kv and returns once its initial
// values are applied.
func (tr *Triggerer) watch(ctx, runCtx context.Context, kv queue.Bucket, apply func(queue.Entry)) error {
	return watchKV(ctx, runCtx, &tr.wg, kv, apply)
}

// watchKV calls apply with every entry of kv, the current ones then every
// change, from a goroutine counted in wg that ends with runCtx. It returns
// once the current entries are applied.
func watchKV(ctx, runCtx context.Context, wg *sync.WaitGroup, kv queue.Bucket, apply func(queue.Entry)) error {
	w, err := kv.WatchAll(runCtx)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { _ = w.Stop() }()
		readyOnce := sync.OnceFunc(func() { close(ready) })
		defer readyOnce()
		for {
			select {
			case <-runCtx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e.CaughtUp() {
					readyOnce()
					continue
				}
				apply(e)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (tr *Triggerer) takeOut() (firedEvent, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.out) == 0 {
		return firedEvent{}, false
	}
	f := tr.out[0]
	tr.out[0] = firedEvent{}
	tr.out = tr.out[1:]
	if len(tr.out) == 0 {
		tr.out = nil
	}
	return f, true
}

func (tr *Triggerer) publishLoop(ctx context.Context) {
	for {
		f, ok := tr.takeOut()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-tr.outCh:
			}
			continue
		}
		tr.publish(ctx, f)
		// Wake another publisher: there may be more.
		select {
		case tr.outCh <- struct{}{}:
		default:
		}
	}
}

// drainOut publishes what is left after the publishers stopped.
func (tr *Triggerer) drainOut(ctx context.Context) {
	for {
		f, ok := tr.takeOut()
		if !ok || ctx.Err() != nil {
			return
		}
		tr.publish(ctx, f)
	}
}

// publish publishes a fired event, retrying until ctx ends, then retires
// the trigger's claim. Once the event is stored the executor resumes the
// task; a trigger run twice publishes an event the executor drops.
func (tr *Triggerer) publish(ctx context.Context, f firedEvent) {
	t := f.r.trigger
	data := mustJSON(f.ev)
	for attempt := 0; ; attempt++ {
		err := tr.q.PublishEvent(ctx, t.TIID, t.ID, data)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			// Not published: the claim stays and the trigger runs again
			// after a hand-back or a takeover.
			tr.log.Warn("event not published before stop", "trigger_id", t.ID, "err", err)
			f.r.mu.Lock()
			f.r.state = halted
			f.r.mu.Unlock()
			return
		}
		tr.log.Warn("publish trigger event", "trigger_id", t.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
		}
	}
	f.r.mu.Lock()
	rev := f.r.rev
	f.r.mu.Unlock()
	if err := tr.kv.DeleteAt(ctx, t.ID, rev); err != nil && ctx.Err() == nil {
		tr.log.Debug("retire trigger claim", "trigger_id", t.ID, "err", err)
	}
	tr.log.Info("trigger fired", "trigger_id", t.ID, "ti_id", t.TIID, "kind", t.Kind, "error", f.ev.Error)
	tr.forget(f.r)
}
