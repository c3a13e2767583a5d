package triggerer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/trigger"
)

// A trigger's life here: claimed from TRIGGERS with a KV create (or adopted
// from a dead triggerer with an update at the revision seen), run, fired,
// and its claim deleted at that revision once its event is published; or
// handed back (owner "") on stop. The run state machine makes sure one of
// fire, halt and hand-back wins.

// claim is a trigger's entry in the triggers bucket. Owner "" means it was
// handed back and waits to be claimed.
type claim struct {
	Owner     string           `json:"owner"`
	ClaimedAt time.Time        `json:"claimed_at,omitzero"`
	Trigger   activity.Trigger `json:"trigger"`
}

// cached is what the claims watch knows of a trigger.
type cached struct {
	owner   string
	rev     uint64
	trigger activity.Trigger
}

// runState is where a run is in its life.
type runState int

const (
	waiting runState = iota // started, not fired
	fired                   // fired: its event is being published
	halted                  // stopped without an event (lost, retired or handed back)
)

// run is a trigger this triggerer runs.
type run struct {
	trigger activity.Trigger

	mu    sync.Mutex
	state runState
	rev   uint64 // of our claim
	stop  func()
	timer *time.Timer
}

// settle moves a waiting run to state to and stops its trigger and timer;
// it reports whether the run was waiting.
func (r *run) settle(to runState) bool {
	r.mu.Lock()
	if r.state != waiting {
		r.mu.Unlock()
		return false
	}
	r.state = to
	stop, timer := r.stop, r.timer
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	if timer != nil {
		timer.Stop()
	}
	return true
}

// halt stops r without an event; it reports whether r was still waiting.
func (r *run) halt() bool { return r.settle(halted) }

func (r *run) is(st runState) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == st
}

func (tr *Triggerer) applyClaim(e queue.Entry) {
	id := e.Key()
	var c claim
	isPut := e.IsPut()
	if isPut {
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			tr.log.Warn("undecodable trigger claim", "trigger_id", id, "err", err)
			isPut = false
		}
	}
	tr.mu.Lock()
	r := tr.running[id]
	if !isPut {
		delete(tr.claims, id)
	} else {
		tr.claims[id] = cached{owner: c.Owner, rev: e.Revision(), trigger: c.Trigger}
	}
	tr.mu.Unlock()

	switch {
	case r != nil && (!isPut || c.Owner != tr.cfg.ID):
		// Retired, cancelled, or claimed by another triggerer: not ours
		// any more.
		if r.halt() {
			tr.log.Debug("trigger no longer ours", "trigger_id", id, "owner", c.Owner)
		}
		tr.forget(r)
	case r != nil:
		r.mu.Lock()
		r.rev = e.Revision()
		r.mu.Unlock()
	case isPut && c.Owner == "":
		tr.kickAdopt()
	}
}

func (tr *Triggerer) kickAdopt() {
	select {
	case tr.kick <- struct{}{}:
	default:
	}
}

// onNew claims a trigger from TRIGGERS and starts it.
func (tr *Triggerer) onNew(ctx context.Context, m queue.Delivery) {
	if tr.isStopping() {
		_ = m.Nak() // for another triggerer, now
		return
	}
	var t activity.Trigger
	if err := json.Unmarshal(m.Data(), &t); err != nil || t.ID == "" || t.TIID == "" {
		tr.log.Error("drop undecodable trigger", "err", err, "data", truncate(m.Data(), 200))
		_ = m.Term()
		return
	}
	rev, err := tr.kv.Create(ctx, t.ID, mustJSON(claim{Owner: tr.cfg.ID, ClaimedAt: time.Now().UTC(), Trigger: t}))
	switch {
	case err == nil:
		tr.startRun(t, rev)
	case errors.Is(err, queue.ErrKeyExists):
		// Delivered again: someone holds it, or it waits to be adopted.
		tr.kickAdopt()
	default:
		if ctx.Err() == nil {
			tr.log.Warn("claim trigger", "trigger_id", t.ID, "err", err)
		}
		_ = m.Nak()
		return
	}
	if err := m.Ack(); err != nil && ctx.Err() == nil {
		tr.log.Debug("ack trigger", "trigger_id", t.ID, "err", err)
	}
}

// adoptOrphans claims triggers handed back or held by dead triggerers, up
// to the free capacity.
func (tr *Triggerer) adoptOrphans(ctx context.Context) {
	now := time.Now()
	tr.mu.Lock()
	if tr.stopping {
		tr.mu.Unlock()
		return
	}
	free := tr.cfg.Capacity - len(tr.running)
	var cands []cached
	for id, c := range tr.claims {
		if len(cands) >= free {
			break
		}
		if _, mine := tr.running[id]; mine || c.owner == tr.cfg.ID {
			continue
		}
		if c.owner == "" || !tr.alive(c.owner, now) {
			cands = append(cands, c)
		}
	}
	tr.mu.Unlock()
	for _, c := range cands {
		if ctx.Err() != nil {
			return
		}
		rev, err := tr.kv.Update(ctx, c.trigger.ID, mustJSON(claim{Owner: tr.cfg.ID, ClaimedAt: time.Now().UTC(), Trigger: c.trigger}), c.rev)
		if err != nil {
			// Another triggerer was faster, or the trigger is gone.
			tr.log.Debug("adopt trigger", "trigger_id", c.trigger.ID, "err", err)
			continue
		}
		tr.log.Info("adopted trigger", "trigger_id", c.trigger.ID, "ti_id", c.trigger.TIID, "from", c.owner)
		tr.startRun(c.trigger, rev)
	}
}

// startRun runs trigger t, claimed at revision rev.
func (tr *Triggerer) startRun(t activity.Trigger, rev uint64) {
	tr.mu.Lock()
	if tr.stopping {
		// Claimed while Stop began: give it back at once.
		tr.mu.Unlock()
		if _, err := tr.kv.Update(context.Background(), t.ID, mustJSON(claim{Trigger: t}), rev); err != nil {
			tr.log.Warn("hand back a trigger claimed during stop", "trigger_id", t.ID, "err", err)
		}
		return
	}
	if r, ok := tr.running[t.ID]; ok {
		tr.mu.Unlock()
		r.mu.Lock()
		r.rev = max(r.rev, rev)
		r.mu.Unlock()
		return
	}
	r := &run{trigger: t, rev: rev}
	tr.running[t.ID] = r
	held := len(tr.running)
	tr.mu.Unlock()
	tr.setHeld(held)

	stop, err := trigger.Start(tr.env, t, func(ev trigger.Event) { tr.fire(r, ev) })
	if err != nil {
		tr.fire(r, trigger.Event{Err: "start trigger: " + err.Error()})
		return
	}
	var timer *time.Timer
	if t.Timeout > 0 {
		deadline := t.DeferredAt.Add(t.Timeout.D())
		timer = time.AfterFunc(time.Until(deadline), func() {
			tr.fire(r, trigger.Event{Err: fmt.Sprintf("trigger timeout after %s", t.Timeout.D())})
		})
	}
	r.mu.Lock()
	settled := r.state != waiting
	r.stop, r.timer = stop, timer
	r.mu.Unlock()
	if settled {
		// It fired (or was halted) before we got here.
		stop()
		if timer != nil {
			timer.Stop()
		}
	}
	tr.log.Debug("trigger started", "trigger_id", t.ID, "ti_id", t.TIID, "kind", t.Kind)
}

// fire queues r's event for publishing, once.
func (tr *Triggerer) fire(r *run, ev trigger.Event) {
	if !r.settle(fired) {
		return
	}
	if tr.cfg.Metrics != nil {
		tr.cfg.Metrics.fired(r.trigger, ev)
	}
	te := activity.TriggerEvent{TriggerID: r.trigger.ID, TIID: r.trigger.TIID, Try: r.trigger.Try,
		Payload: ev.Payload, Error: ev.Err, End: ev.End, XComs: ev.XComs, FiredAt: time.Now().UTC(), FiredBy: tr.cfg.ID}
	tr.mu.Lock()
	tr.out = append(tr.out, firedEvent{r: r, ev: te})
	tr.mu.Unlock()
	select {
	case tr.outCh <- struct{}{}:
	default:
	}
}

func (tr *Triggerer) forget(r *run) {
	tr.mu.Lock()
	if tr.running[r.trigger.ID] == r {
		delete(tr.running, r.trigger.ID)
	}
	held := len(tr.running)
	tr.mu.Unlock()
	tr.setHeld(held)
	tr.signalFreed()
}

// handBack marks r's claim as unowned so another triggerer claims it now.
func (tr *Triggerer) handBack(ctx context.Context, r *run) error {
	r.mu.Lock()
	rev := r.rev
	r.mu.Unlock()
	_, err := tr.kv.Update(ctx, r.trigger.ID, mustJSON(claim{Trigger: r.trigger}), rev)
	if err != nil {
		return err
	}
	return nil
}
