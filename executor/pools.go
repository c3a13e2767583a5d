package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// Pools: admission of task instances to named pools of slots.
//
// Design (README, "Pools"): each pool is one record in the pools KV bucket
// holding its slot count and its holders, the task instances admitted to
// it (by id, with the dispatch they were admitted for and their slots).
// Every executor replica runs the same admission pass on a pool: it reads
// the record, drops the holders whose task no longer holds a slot (ended,
// up for retry, deferred without include_deferred, or at a later
// dispatch), adds the waiting task instances in priority order while
// slots are open, and writes the record with compare-and-set at the
// revision it read. Only the replica whose write wins publishes the
// ExecuteTask activities of the instances it added; a loser reads again
// and finds them holders. So the sum of the holders' slots never exceeds
// the pool's slots, whatever the number of replicas, and a task is only
// published while it holds its slots.
//
// A task instance holds its slots from its admission until its record
// leaves the states that hold them (queued and running, and deferred when
// the pool includes deferred tasks); every replica sees that on its
// record watch and runs the pass, which is how a freed slot goes to the
// next waiting task at once.

// poolAdmissionPoll is how often every pool is passed over even when
// nothing changed (holders whose record never arrived expire, a holder
// admitted by a replica that stopped before publishing is published).
const poolAdmissionPoll = time.Second

// poolHolderOrphanAfter is how long a holder whose task-instance record is
// not known here keeps its slots (a record being created elsewhere, or
// one deleted by retention).
const poolHolderOrphanAfter = time.Minute

// poolRepublishAfter is how long after its admission a holder still queued
// at its dispatch is published again (its admitter may have stopped
// before publishing; a duplicate is dropped by JetStream or refused by
// …/run).
const poolRepublishAfter = 15 * time.Second

// poolRecord is a pool as stored in the pools bucket.
type poolRecord struct {
	Slots           int                   `json:"slots"`
	IncludeDeferred bool                  `json:"include_deferred,omitempty"`
	Description     string                `json:"description,omitempty"`
	Holders         map[string]poolHolder `json:"holders,omitempty"`
}

// poolHolder is a task instance admitted to a pool.
type poolHolder struct {
	Dispatch int       `json:"d"`
	Slots    int       `json:"s"`
	Since    time.Time `json:"t"`
}

func (r *poolRecord) occupied() int {
	n := 0
	for _, h := range r.Holders {
		n += h.Slots
	}
	return n
}

type cachedPool struct {
	rec *poolRecord
	rev uint64
}

// pools keeps the pool records (a watch of the pools bucket), an index of
// the active task instances by pool (fed by the record store), and runs
// the admission passes.
type pools struct {
	kv    queue.Bucket
	log   *slog.Logger
	store *store
	// publish sends ti's ExecuteTask activity; wait blocks until the
	// stream acknowledged it.
	publish func(context.Context, *activity.TaskInstance) (wait func() error, err error)
	now     func() time.Time

	mu   sync.Mutex
	recs map[string]cachedPool
	// active holds, by pool, the queued, running and deferred task
	// instances of the pool as last seen.
	active map[string]map[string]*activity.TaskInstance
	// waiting holds, by key, the instances of active that may be
	// admitted (queued at a dispatch), in admission order.
	waiting map[string]*waitlist
	dirty   map[string]bool
	// republished holds "id.dispatch" of the holders published again.
	republished map[string]bool
	// wasLimited holds the pools seen with a limit: when one has none any
	// more (deleted default_pool, slots -1) its waiting tasks are published.
	wasLimited map[string]bool
	kick       chan struct{}
	// gateKick wakes the gatekeeper (flushGated) when a record that
	// gated tasks wait for ended, or a gated task was added.
	gateKick chan struct{}
	// freedAt holds, by key, when a holder's record was first seen to give
	// its slots back since the key's last pass; latencies the last
	// admissionSamples times from there to the next admitted task's
	// publish (admission latency).
	freedAt   map[string]time.Time
	latencies []AdmissionSample
	// acks takes the activities the passes published to the acker,
	// which awaits their acknowledgements (the pass does not: the next
	// pass runs meanwhile).
	acks chan sentActivity
	// gone holds, by id, the records that left the states holding a slot
	// (seen by observe), so a holder is released even when its finished
	// record is no longer in the store's cache (--record-cache); entries
	// are dropped after poolHolderOrphanAfter (a task may hold several
	// keys, each released by its own pass), or when the record is active
	// again.
	gone map[string]goneRecord
	// endings holds, by id, the tasks whose end this replica is writing
	// (early release, see ending); early holds, by key, those whose slots
	// a record written here released early, until their records end;
	// gates holds, by id, the early releases an admitted task waits for
	// before it is published; gated are the admitted tasks waiting so.
	endings map[string]*endingMark
	early   map[string]map[*endingMark]bool
	gates   map[string][]*endingMark
	gated   []outgoing
}

// endingMark is a task whose end is being written by this replica.
type endingMark struct {
	id       string
	dispatch int
	// released says a pass released its slots (under mu); endedAt is
	// when its record was then seen ending.
	released bool
	endedAt  time.Time
}

// outgoing is an admitted task instance to publish; freed, when set, is
// when the slot it took was seen freed (an admission latency sample).
type outgoing struct {
	ti    *activity.TaskInstance
	freed time.Time
	// early: the slot it took was released early (freed is then when the
	// last of the records it waited for was seen ending).
	early bool
	// pass, cas and written are when the pass that admitted it began, sent
	// its successful write and had it acknowledged (the sample's steps).
	pass, cas, written time.Time
}

// goneRecord is a record seen leaving its pools' active states.
type goneRecord struct {
	ti *activity.TaskInstance
	at time.Time
}

// admissionSamples bounds the admission latencies kept.
const admissionSamples = 10_000

func newPools(kv queue.Bucket, s *store, log *slog.Logger) *pools {
	return &pools{
		kv: kv, log: log, store: s, now: func() time.Time { return time.Now().UTC() },
		recs: map[string]cachedPool{}, active: map[string]map[string]*activity.TaskInstance{}, waiting: map[string]*waitlist{},
		dirty: map[string]bool{}, republished: map[string]bool{}, wasLimited: map[string]bool{}, freedAt: map[string]time.Time{}, kick: make(chan struct{}, 1), gateKick: make(chan struct{}, 1),
		acks: make(chan sentActivity, 1024), gone: map[string]goneRecord{},
		endings: map[string]*endingMark{}, early: map[string]map[*endingMark]bool{}, gates: map[string][]*endingMark{},
	}
}

// holdsSlot reports whether ti, at its current dispatch, counts against
// its pool.
func holdsSlot(ti *activity.TaskInstance, includeDeferred bool) bool {
	switch ti.State {
	case activity.StateQueued, activity.StateRunning:
		return true
	case activity.StateDeferred:
		return includeDeferred
	}
	return false
}

// Admission keys. A task instance is admitted under each of its keys in
// turn, each a record of the pools bucket: its pool, then (with
// max_active_tis_per_dag) its task's key, then its queue's (when the queue
// has a max_running). Its activity is published once it holds all of them.
const (
	queueKeyPrefix = "queue."
	taskKeyPrefix  = "task."
)

func queueLimitKey(q string) string { return queueKeyPrefix + q }

func taskLimitKey(dagID, taskID string) string {
	return taskKeyPrefix + kvKey(dagID) + "." + kvKey(taskID)
}

// limitKeys are ti's admission keys, in the order it takes them.
func limitKeys(ti *activity.TaskInstance) []string {
	keys := make([]string, 0, 3)
	keys = append(keys, ti.PoolName())
	if ti.MaxActiveTisPerDag > 0 {
		keys = append(keys, taskLimitKey(ti.DagID, ti.TaskID))
	}
	return append(keys, queueLimitKey(ti.Queue))
}

// describeKey names an admission key for a person.
func describeKey(key string, ti *activity.TaskInstance) string {
	switch {
	case strings.HasPrefix(key, queueKeyPrefix):
		return "queue " + ti.Queue + "'s max_running"
	case strings.HasPrefix(key, taskKeyPrefix):
		return fmt.Sprintf("max_active_tis_per_dag of %s.%s", ti.DagID, ti.TaskID)
	}
	return "pool " + key
}

// limitOf returns the record that limits key for ti (a task key's record
// may not exist yet: ti's own bound stands for it). ok is false when key
// sets no limit. Call with mu held.
func (p *pools) limitOf(key string, ti *activity.TaskInstance) (rec *poolRecord, exists, ok bool) {
	c, exists := p.recs[key]
	if exists {
		return c.rec, true, c.rec.Slots >= 0
	}
	switch {
	case strings.HasPrefix(key, queueKeyPrefix), key == activity.DefaultPool:
		return nil, false, false
	case strings.HasPrefix(key, taskKeyPrefix):
		if ti == nil || ti.MaxActiveTisPerDag <= 0 {
			return nil, false, false
		}
		return &poolRecord{Slots: ti.MaxActiveTisPerDag}, false, true
	}
	return &poolRecord{}, false, true // a named pool that does not exist
}

// heldAt reports whether ti holds key at its current dispatch, or key sets
// no limit. Call with mu held.
func (p *pools) heldAt(key string, ti *activity.TaskInstance) bool {
	rec, _, limited := p.limitOf(key, ti)
	if !limited {
		return true
	}
	h, ok := rec.Holders[ti.ID]
	return ok && h.Dispatch == ti.Dispatch
}

// observe is called by the store for every record it caches (under its
// lock: it only updates the index and wakes the pass).
func (p *pools) observe(ti *activity.TaskInstance) {
	active := ti.State == activity.StateQueued || ti.State == activity.StateRunning || ti.State == activity.StateDeferred
	wake, gated := false, false
	p.mu.Lock()
	if active {
		delete(p.gone, ti.ID)
	}
	for _, key := range limitKeys(ti) {
		m := p.active[key]
		prev, had := m[ti.ID]
		p.index(key, prev, had, ti, active)
		switch {
		case active:
			if m == nil {
				m = map[string]*activity.TaskInstance{}
				p.active[key] = m
			}
			m[ti.ID] = ti
		case had:
			delete(m, ti.ID)
			if len(m) == 0 {
				delete(p.active, key)
			}
		}
		changed := active != had || (had && (prev.State != ti.State || prev.Dispatch != ti.Dispatch))
		if rec, _, limited := p.limitOf(key, ti); changed && limited {
			if had && !active {
				p.gone[ti.ID] = goneRecord{ti: ti, at: time.Now()}
			}
			p.dirty[key] = true
			wake = true
			if had && holdsSlot(prev, rec.IncludeDeferred) && (!holdsSlot(ti, rec.IncludeDeferred) || ti.Dispatch != prev.Dispatch) {
				if m := p.endings[ti.ID]; m != nil && m.released {
					// Its slots went early: the tasks admitted in them
					// wait for this (gated), not the next pass.
					if m.endedAt.IsZero() {
						m.endedAt = time.Now()
						gated = true
					}
				} else if _, ok := p.freedAt[key]; !ok {
					p.freedAt[key] = time.Now()
				}
			}
		}
	}
	p.mu.Unlock()
	if gated {
		p.wakeGate()
	}
	if wake {
		p.wake()
	}
}

// index keeps key's waitlist: prev (when had) was the record indexed,
// ti the one replacing it (when active). Call with mu held.
func (p *pools) index(key string, prev *activity.TaskInstance, had bool, ti *activity.TaskInstance, active bool) {
	wl := p.waiting[key]
	if had && wl != nil && mayWait(prev) {
		wl.remove(prev)
	}
	if active && mayWait(ti) {
		if wl == nil {
			wl = &waitlist{}
			p.waiting[key] = wl
		}
		wl.add(ti)
	}
	if wl != nil && wl.len() == 0 {
		delete(p.waiting, key)
	}
}

// forget drops a deleted record from the index.
func (p *pools) forget(id string) {
	p.mu.Lock()
	for name, m := range p.active {
		if ti, ok := m[id]; ok {
			p.index(name, ti, true, nil, false)
			delete(m, id)
			p.dirty[name] = true
		}
	}
	p.mu.Unlock()
	p.wake()
}

func (p *pools) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pools) wakeGate() {
	select {
	case p.gateKick <- struct{}{}:
	default:
	}
}

// poolExists reports whether a pool may be named at submit: it is stored,
// or it is default_pool.
func (p *pools) poolExists(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.recs[name]
	return ok || name == activity.DefaultPool
}

// mayPublish reports whether ti's current dispatch may be published now:
// it holds every admission key that sets a limit. When not, ti waits for
// the admission passes (which its record's arrival in the store sets off).
func (p *pools) mayPublish(ti *activity.TaskInstance) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, key := range limitKeys(ti) {
		if !p.heldAt(key, ti) {
			return false
		}
	}
	return true
}

// waitingReason says why a queued task instance is not published yet, or
// "" when it is (admitted, or nothing limits it).
func (p *pools) waitingReason(ti *activity.TaskInstance) string {
	if ti.State != activity.StateQueued {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, key := range limitKeys(ti) {
		if p.heldAt(key, ti) {
			continue
		}
		rec, exists, _ := p.limitOf(key, ti)
		if !exists && !strings.HasPrefix(key, taskKeyPrefix) {
			return fmt.Sprintf("waiting for pool %s, which does not exist", key)
		}
		return fmt.Sprintf("waiting for %s (%d of %d slots open, needs %d)", describeKey(key, ti),
			max(rec.Slots-rec.occupied(), 0), rec.Slots, slotsUnder(key, ti))
	}
	return ""
}

// slotsUnder is how many slots ti takes under key: its pool_slots in its
// pool, one under the other keys.
func slotsUnder(key string, ti *activity.TaskInstance) int {
	if key == ti.PoolName() {
		return ti.Slots()
	}
	return 1
}

// watch keeps recs current until ctx ends; ready is closed once loaded.
func (p *pools) watch(ctx context.Context, ready chan<- struct{}) error {
	if err := p.kv.Follow(ctx, func() { close(ready) }, p.applyEntry); err != nil {
		return fmt.Errorf("watch pools: %w", err)
	}
	return nil
}

func (p *pools) applyEntry(e queue.Entry) {
	name := e.Key()
	if !e.IsPut() {
		p.mu.Lock()
		if c, ok := p.recs[name]; ok && c.rev < e.Revision() {
			delete(p.recs, name)
		}
		p.dirty[name] = true
		p.mu.Unlock()
		p.wake()
		return
	}
	var rec poolRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		p.log.Warn("skip undecodable pool", "pool", name, "err", err)
		return
	}
	p.remember(name, &rec, e.Revision())
	p.wake()
}

func (p *pools) remember(name string, rec *poolRecord, rev uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.recs[name]; ok && c.rev >= rev {
		return
	}
	p.recs[name] = cachedPool{rec: rec, rev: rev}
	p.dirty[name] = true
	if rec.Slots >= 0 {
		p.wasLimited[name] = true
	}
}

// run runs admission passes until ctx ends: on every change, and every
// poolAdmissionPoll over every pool.
func (p *pools) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.acker(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.gatekeeper(ctx)
	}()
	t := time.NewTicker(poolAdmissionPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
			p.mu.Lock()
			for name := range p.recs {
				p.dirty[name] = true
			}
			p.dirty[activity.DefaultPool] = true
			for id, g := range p.gone {
				if time.Since(g.at) > poolHolderOrphanAfter {
					delete(p.gone, id)
				}
			}
			p.mu.Unlock()
		}
		p.flushGated(ctx)
		p.mu.Lock()
		names := make([]string, 0, len(p.dirty))
		for name := range p.dirty {
			names = append(names, name)
		}
		clear(p.dirty)
		p.mu.Unlock()
		for _, name := range names {
			if ctx.Err() != nil {
				return
			}
			if err := p.pass(ctx, name); err != nil && ctx.Err() == nil {
				p.log.Warn("pool admission pass", "pool", name, "err", err)
				p.mu.Lock()
				p.dirty[name] = true
				p.mu.Unlock()
			}
		}
	}
}

// pass runs admission under one key (see the design above).
func (p *pools) pass(ctx context.Context, name string) error {
	p.mu.Lock()
	c, exists := p.recs[name]
	var any *activity.TaskInstance
	for _, ti := range p.active[name] {
		any = ti
		break
	}
	hasActive := any != nil
	rec, _, limited := p.limitOf(name, any)
	freed, wasFreed := p.freedAt[name]
	delete(p.freedAt, name)
	released := !limited && p.wasLimited[name]
	var tis []*activity.TaskInstance
	if !limited {
		delete(p.wasLimited, name)
		if released {
			for _, ti := range p.active[name] {
				tis = append(tis, ti)
			}
		}
	}
	p.mu.Unlock()
	if released {
		// No limit any more: publish what waited (and may go now).
		for _, ti := range tis {
			if ti.State == activity.StateQueued && ti.Dispatch > 0 {
				p.send(ctx, outgoing{ti: ti})
			}
		}
	}
	if !limited || (!exists && !hasActive) {
		return nil
	}
	if !exists && !strings.HasPrefix(name, taskKeyPrefix) {
		return nil // a pool that does not exist: its tasks wait
	}
	rev := c.rev // 0: a task key's record is created by its first pass
	began := time.Now()
	for attempt := 0; ; attempt++ {
		next, admitted, released, changed := p.admit(name, rec)
		if !changed {
			p.republish(ctx, next)
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		var nrev uint64
		sent := time.Now()
		if rev == 0 {
			nrev, err = p.kv.Create(ctx, name, b)
		} else {
			nrev, err = p.kv.Update(ctx, name, b, rev)
		}
		if err == nil {
			written := time.Now()
			p.remember(name, next, nrev)
			endedAt := p.gate(name, released, admitted)
			wake := false
			for _, ti := range admitted {
				if c, ok := p.store.cached(ti.ID); ok && (c.ti.State != activity.StateQueued || c.ti.Dispatch != ti.Dispatch) {
					// Cancelled, cleared or run meanwhile: its record's
					// change set off the pass that releases it.
					continue
				}
				if p.mayPublish(ti) {
					o := outgoing{ti: ti}
					switch {
					case !endedAt.IsZero():
						// A slot released early whose record ended
						// before this write was acknowledged (a gated
						// task's sample starts where its gate opens).
						o.freed, o.early, endedAt = endedAt, true, time.Time{}
					case wasFreed:
						o.freed, wasFreed = freed, false
						o.pass, o.cas, o.written = began, sent, written
					}
					p.send(ctx, o)
					continue
				}
				// Its next key's pass admits it further.
				p.mu.Lock()
				for _, key := range limitKeys(ti) {
					if !p.heldAt(key, ti) {
						p.dirty[key] = true
						wake = true
					}
				}
				p.mu.Unlock()
			}
			if wake {
				p.wake()
			}
			return nil
		}
		if !queue.IsConflict(err) || attempt >= 50 {
			return fmt.Errorf("update admission record %s: %w", name, err)
		}
		ent, gerr := p.kv.Get(ctx, name)
		if errors.Is(gerr, queue.ErrKeyNotFound) {
			return nil // deleted meanwhile
		}
		if gerr != nil {
			return fmt.Errorf("read admission record %s: %w", name, gerr)
		}
		var fresh poolRecord
		if err := json.Unmarshal(ent.Value(), &fresh); err != nil {
			return fmt.Errorf("decode admission record %s: %w", name, err)
		}
		rec, rev = &fresh, ent.Revision()
		p.remember(name, rec, rev)
	}
}

// AdmissionSample is one admission latency (slot freed → the next task's
// activity published and acknowledged by the stream) and its steps, in
// order: Wake, from the record's end seen to the admission pass
// beginning (a pass under way finishes first); Pass, from there to the
// successful write of the pool record sent (reading the waiting tasks,
// earlier conflicting writes); Write, that write's round trip; Publish,
// from there to the activity's acknowledgement. Sent is from the slot
// freed to the activity's publish issued (handed to the connection,
// before the stream's acknowledgement: Total − Sent is the wait for it).
//
// Early says the slot was released while its task's end was written
// (see ending): the pass and its write ran beside that write, and the
// sample is from the record seen ending (Wake, Pass and Write are zero;
// Publish is from the publish issued to its acknowledgement).
type AdmissionSample struct {
	Total, Wake, Pass, Write, Publish time.Duration
	Sent                              time.Duration
	Early                             bool
}

func (p *pools) sample(d AdmissionSample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.latencies) >= admissionSamples {
		p.latencies = p.latencies[1:]
	}
	p.latencies = append(p.latencies, d)
}

// admissionLatencies returns the admission latencies sampled (oldest
// first) and forgets them.
func (p *pools) admissionLatencies() []AdmissionSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.latencies
	p.latencies = nil
	return out
}

// admit computes the next record under key: holders that no longer hold a
// slot released, then waiting instances (tis, in admission order) that
// hold their earlier keys added while they fit. It returns the instances
// added.
func (p *pools) admit(key string, rec *poolRecord) (*poolRecord, []*activity.TaskInstance, []*endingMark, bool) {
	now := p.now()
	next := *rec
	next.Holders = make(map[string]poolHolder, len(rec.Holders))
	changed := false
	var early []*endingMark
	for id, h := range rec.Holders {
		ti, ok := p.holderRecord(id)
		switch {
		case !ok && now.Sub(h.Since) > poolHolderOrphanAfter:
			changed = true
			continue
		case ok && ti.Dispatch == h.Dispatch && ti.State == activity.StateRunning && p.releaseEarly(id, h.Dispatch, &early):
			// Its end is being written here: released at once, the
			// tasks admitted in its slots published once it is written.
			changed = true
			continue
		case !ok, ti.Dispatch < h.Dispatch:
			// Not known here yet, or behind the admitter: keep.
		case ti.Dispatch > h.Dispatch || !holdsSlot(ti, rec.IncludeDeferred):
			changed = true
			continue
		}
		next.Holders[id] = h
	}
	if !strings.HasPrefix(key, taskKeyPrefix) && next.Slots-next.occupied() <= 0 {
		return &next, nil, early, changed // no room: the waiting need not be read
	}
	if strings.HasPrefix(key, taskKeyPrefix) {
		// The bound is the task's, as its newest instance says.
		var newest *activity.TaskInstance
		tis := p.indexed(key)
		for _, ti := range tis {
			if ti.QueuedAt != nil && (newest == nil || newest.QueuedAt.Before(*ti.QueuedAt)) {
				newest = ti
			}
		}
		if newest == nil && len(tis) > 0 {
			newest = tis[0]
		}
		if newest != nil && newest.MaxActiveTisPerDag > 0 && newest.MaxActiveTisPerDag != next.Slots {
			next.Slots, changed = newest.MaxActiveTisPerDag, true
		}
	}
	open := next.Slots - next.occupied()
	// The waiting instances are read after the holders were judged: a
	// task seen ended above was seen after every instance queued before it
	// ended (the store tells the index of a record after caching it), so
	// none of those is missed. They are kept in admission order (highest
	// weight, then first queued: waitlist); the first few suffice, but
	// when tasks that need more slots than are open stand in front (or
	// wait for another key): then all of them.
	tis, all := p.waitingFirst(key, len(next.Holders)+open+32)
	var admitted []*activity.TaskInstance
	for i := 0; open > 0; i++ {
		if i == len(tis) {
			if all {
				break
			}
			// Again over all of them (those passed over are again).
			tis, all = p.waitingFirst(key, -1)
			if i = 0; len(tis) == 0 {
				break
			}
		}
		ti := tis[i]
		if ti.State != activity.StateQueued || ti.Dispatch == 0 {
			continue
		}
		if h, ok := next.Holders[ti.ID]; ok && h.Dispatch >= ti.Dispatch {
			continue
		}
		// The index may be behind the store: decide on the cached record.
		if c, ok := p.store.cached(ti.ID); ok {
			if c.ti.State != activity.StateQueued || c.ti.Dispatch != ti.Dispatch {
				continue
			}
			ti = c.ti
		}
		if !p.holdsBefore(key, ti) {
			continue
		}
		n := slotsUnder(key, ti)
		if n > open {
			continue // a smaller one further down may fit (as Airflow does)
		}
		next.Holders[ti.ID] = poolHolder{Dispatch: ti.Dispatch, Slots: n, Since: now}
		open -= n
		admitted = append(admitted, ti)
		changed = true
	}
	return &next, admitted, early, changed
}

// Early release. A task's slots are given back when its record leaves
// the states that hold them; the replica that writes that record (its
// worker reported the end: the process is done) need not wait for the
// write before it writes the pool record: its handler marks the task
// (ending), its passes release the task's slots at once, and the tasks
// admitted in them wait (gated) until the task's record is seen ended,
// so the pool record's compare-and-set runs beside the record's write
// instead of after it. Nothing is published before the task's record
// ended: at no time are more tasks queued-and-published or running than
// the pool's slots. A write that fails leaves its task running without
// a holder until a later report (or the zombie scan) ends it, and the
// tasks admitted in its slots wait for that; meanwhile the pool admits
// nothing else in them.

// ending marks ti, a running task whose end this replica is about to
// write, and wakes the passes of its keys; settled must be called once
// the write is done (or failed). It returns nil when no key of ti sets a
// limit.
func (p *pools) ending(ti *activity.TaskInstance) (settled func()) {
	m := &endingMark{id: ti.ID, dispatch: ti.Dispatch}
	p.mu.Lock()
	limited := false
	for _, key := range limitKeys(ti) {
		if _, _, ok := p.limitOf(key, ti); ok {
			p.dirty[key], limited = true, true
		}
	}
	if limited {
		p.endings[ti.ID] = m
	}
	p.mu.Unlock()
	if !limited {
		return nil
	}
	p.wake()
	return func() {
		p.mu.Lock()
		if p.endings[ti.ID] == m {
			delete(p.endings, ti.ID)
		}
		p.mu.Unlock()
		p.wake()
	}
}

// releaseEarly reports whether holder id at dispatch is marked ending
// here, and then adds its mark to marks.
func (p *pools) releaseEarly(id string, dispatch int, marks *[]*endingMark) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.endings[id]
	if m == nil || m.dispatch != dispatch {
		return false
	}
	m.released = true
	*marks = append(*marks, m)
	return true
}

// ended reports whether m's record has left the states holding a slot
// at its dispatch (or is known here no more).
func (p *pools) ended(m *endingMark) bool {
	ti, ok := p.holderRecord(m.id)
	if !ok {
		return true
	}
	return ti.Dispatch != m.dispatch || !(ti.State == activity.StateQueued || ti.State == activity.StateRunning || ti.State == activity.StateDeferred)
}

// gate records, after a pass under key wrote its record, what the tasks
// it admitted wait for: the early releases it wrote, and those of key's
// earlier writes whose records have not ended yet (the slots any
// admission under key takes may be theirs). endedAt is when the last of
// the records it released early that have already ended was seen ending
// (zero when none has): the admission latency of a task it admitted and
// does not gate starts there.
func (p *pools) gate(key string, released []*endingMark, admitted []*activity.TaskInstance) (endedAt time.Time) {
	p.mu.Lock()
	marks := p.early[key]
	if len(released) > 0 && marks == nil {
		marks = map[*endingMark]bool{}
		p.early[key] = marks
	}
	for _, m := range released {
		marks[m] = true
	}
	var open []*endingMark
	for m := range marks {
		open = append(open, m)
	}
	p.mu.Unlock()
	var waits []*endingMark
	for _, m := range open {
		if !p.ended(m) {
			waits = append(waits, m)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range open {
		if !slices.Contains(waits, m) {
			delete(marks, m)
		}
	}
	if len(marks) == 0 {
		delete(p.early, key)
	}
	for _, m := range released {
		if !slices.Contains(waits, m) && m.endedAt.After(endedAt) {
			endedAt = m.endedAt
		}
	}
	if len(waits) == 0 {
		return endedAt
	}
	for _, ti := range admitted {
		p.gates[ti.ID] = append(p.gates[ti.ID], waits...)
	}
	return endedAt
}

// ungated reports whether o may be published: the records its admission
// waits for have ended (o.freed is then the last seen ending).
func (p *pools) ungated(o *outgoing) bool {
	p.mu.Lock()
	marks := p.gates[o.ti.ID]
	p.mu.Unlock()
	if len(marks) == 0 {
		return true
	}
	var last time.Time
	for _, m := range marks {
		if !p.ended(m) {
			return false
		}
	}
	p.mu.Lock()
	for _, m := range marks {
		if m.endedAt.After(last) {
			last = m.endedAt
		}
	}
	delete(p.gates, o.ti.ID)
	p.mu.Unlock()
	if !last.IsZero() {
		o.freed, o.early = last, true
	}
	return true
}

// gatekeeper publishes the gated tasks as soon as the records they wait
// for end, until ctx ends: not in the passes' loop, where the flush
// would wait for the pass under way (its pool record write, a round
// trip). The loop flushes too (a task gated after its record ended).
func (p *pools) gatekeeper(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.gateKick:
		}
		p.flushGated(ctx)
	}
}

// flushGated publishes the gated tasks whose records waited for ended,
// and drops those no longer queued at their dispatch.
func (p *pools) flushGated(ctx context.Context) {
	p.mu.Lock()
	gated := p.gated
	p.gated = nil
	p.mu.Unlock()
	for _, o := range gated {
		if c, ok := p.store.cached(o.ti.ID); !ok || c.ti.State != activity.StateQueued || c.ti.Dispatch != o.ti.Dispatch {
			p.mu.Lock()
			delete(p.gates, o.ti.ID)
			p.mu.Unlock()
			continue
		}
		if p.mayPublish(o.ti) {
			p.send(ctx, o)
		}
	}
}

// holderRecord returns what is known here of a holder's record: the
// store's cached record, else the record observe saw leave the active
// states (a finished record may have left the store's cache since: the
// slot it frees must not wait for the orphan timeout).
func (p *pools) holderRecord(id string) (*activity.TaskInstance, bool) {
	if c, ok := p.store.cached(id); ok {
		return c.ti, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.gone[id]
	return g.ti, ok
}

// waitingFirst returns the first n instances waiting under key (all of
// them when n < 0), in admission order; all says there are no more.
func (p *pools) waitingFirst(key string, n int) (tis []*activity.TaskInstance, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wl := p.waiting[key]
	if wl == nil {
		return nil, true
	}
	if n < 0 || n >= wl.len() {
		return wl.appendTo(make([]*activity.TaskInstance, 0, wl.len())), true
	}
	tis = make([]*activity.TaskInstance, 0, n)
	for _, e := range wl.es {
		if len(tis) == n {
			break
		}
		if e.ti != nil {
			tis = append(tis, e.ti)
		}
	}
	return tis, false
}

// indexed returns the active instances under key.
func (p *pools) indexed(key string) []*activity.TaskInstance {
	p.mu.Lock()
	defer p.mu.Unlock()
	tis := make([]*activity.TaskInstance, 0, len(p.active[key]))
	for _, ti := range p.active[key] {
		tis = append(tis, ti)
	}
	return tis
}

// holdsBefore reports whether ti holds every key it takes before key.
func (p *pools) holdsBefore(key string, ti *activity.TaskInstance) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range limitKeys(ti) {
		if k == key {
			return true
		}
		if !p.heldAt(k, ti) {
			return false
		}
	}
	return true
}

// republish publishes again the holders still queued at their dispatch
// long after their admission, once each (their admitter may have stopped
// before it published them).
func (p *pools) republish(ctx context.Context, rec *poolRecord) {
	now := p.now()
	for id, h := range rec.Holders {
		if now.Sub(h.Since) < poolRepublishAfter {
			continue
		}
		c, ok := p.store.cached(id)
		if !ok || c.ti.State != activity.StateQueued || c.ti.Dispatch != h.Dispatch {
			continue
		}
		k := fmt.Sprintf("%s.%d", id, h.Dispatch)
		p.mu.Lock()
		done := p.republished[k]
		p.republished[k] = true
		if len(p.republished) > 100_000 {
			clear(p.republished)
		}
		p.mu.Unlock()
		if !done {
			p.send(ctx, outgoing{ti: c.ti})
		}
	}
}

// send publishes an admitted task instance's activity without waiting for
// the stream's acknowledgement, which the acker awaits: the pass goes on
// at once (the next CAS never waits for a publish), and no goroutine
// hand-off stands between the CAS and the publish. A publish that fails,
// or is not acknowledged, is published again by the scan (the executor's
// publish function records it in unpublished).
func (p *pools) send(ctx context.Context, o outgoing) {
	if !p.ungated(&o) {
		p.mu.Lock()
		p.gated = append(p.gated, o)
		p.mu.Unlock()
		return
	}
	wait, err := p.publish(ctx, o.ti)
	if err != nil {
		p.log.Warn("publish admitted task; the scan publishes it again", "ti_id", o.ti.ID, "err", err)
		return
	}
	select {
	case p.acks <- sentActivity{o, wait, time.Now()}:
	case <-ctx.Done():
	}
}

// sentActivity is a published admitted task instance whose
// acknowledgement is awaited.
type sentActivity struct {
	outgoing
	wait func() error
	// sent is when its publish was issued.
	sent time.Time
}

// acker awaits the acknowledgements of the activities the passes sent
// and samples the admission latencies, until ctx ends.
func (p *pools) acker(ctx context.Context) {
	for {
		var s sentActivity
		select {
		case s = <-p.acks:
		case <-ctx.Done():
			return
		}
		if err := s.wait(); err != nil {
			if ctx.Err() == nil {
				p.log.Warn("publish admitted task; the scan publishes it again", "ti_id", s.ti.ID, "err", err)
			}
			continue
		}
		switch now := time.Now(); {
		case s.early:
			p.sample(AdmissionSample{Total: now.Sub(s.freed), Early: true, Publish: now.Sub(s.sent), Sent: s.sent.Sub(s.freed)})
		case !s.freed.IsZero():
			p.sample(AdmissionSample{Total: now.Sub(s.freed), Wake: s.pass.Sub(s.freed), Pass: s.cas.Sub(s.pass),
				Write: s.written.Sub(s.cas), Publish: now.Sub(s.written), Sent: s.sent.Sub(s.freed)})
		}
	}
}

// status is the API view of a pool.
func (p *pools) status(name string) (activity.Pool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, exists := p.recs[name]
	out := activity.Pool{Name: name, Slots: -1}
	if exists {
		out.Slots, out.IncludeDeferred, out.Description = c.rec.Slots, c.rec.IncludeDeferred, c.rec.Description
	} else if name != activity.DefaultPool {
		return out, false
	}
	for _, ti := range p.active[name] {
		held := !exists || out.Slots < 0
		if exists {
			if h, ok := c.rec.Holders[ti.ID]; ok && h.Dispatch == ti.Dispatch {
				held = true
			}
		}
		switch {
		case !held && ti.State == activity.StateQueued:
			out.Waiting++
			out.WaitingSlots += ti.Slots()
			continue
		case !held:
			if ti.State == activity.StateDeferred {
				out.Deferred++
			}
			continue
		case ti.State == activity.StateQueued:
			out.Queued++
		case ti.State == activity.StateRunning:
			out.Running++
		case ti.State == activity.StateDeferred:
			out.Deferred++
		}
	}
	if exists {
		out.Occupied = c.rec.occupied()
	} else {
		out.Occupied = out.Queued + out.Running
	}
	out.Open = -1
	if out.Slots >= 0 {
		out.Open = max(out.Slots-out.Occupied, 0)
	}
	return out, true
}

// waitingByQueue counts the task instances waiting for admission by queue.
func (p *pools) waitingByQueue() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for key, m := range p.active {
		if !strings.HasPrefix(key, queueKeyPrefix) {
			continue
		}
		for _, ti := range m {
			if ti.State != activity.StateQueued {
				continue
			}
			for _, k := range limitKeys(ti) {
				if !p.heldAt(k, ti) {
					out[ti.Queue]++
					break
				}
			}
		}
	}
	return out
}

// names lists the pools: every stored one, and default_pool.
func (p *pools) names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []string{activity.DefaultPool}
	for name := range p.recs {
		if name != activity.DefaultPool && !strings.Contains(name, ".") {
			out = append(out, name)
		}
	}
	sort.Strings(out[1:])
	return out
}

// set creates or changes a pool's settings, keeping its holders.
func (p *pools) set(ctx context.Context, name string, slots int, includeDeferred bool, description string) error {
	_, err := queue.UpdateCAS(ctx, p.kv, name, func(old []byte) ([]byte, error) {
		var rec poolRecord
		if old != nil {
			if err := json.Unmarshal(old, &rec); err != nil {
				return nil, err
			}
		}
		rec.Slots, rec.IncludeDeferred, rec.Description = slots, includeDeferred, description
		return json.Marshal(&rec)
	})
	if err == nil {
		p.mu.Lock()
		p.dirty[name] = true
		p.mu.Unlock()
		p.wake()
	}
	return err
}

// remove deletes a pool. Its tasks wait until it is made again (those of
// default_pool run without limit).
func (p *pools) remove(ctx context.Context, name string) error {
	ent, err := p.kv.Get(ctx, name)
	if errors.Is(err, queue.ErrKeyNotFound) {
		return fmt.Errorf("pool %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read pool %s: %w", name, err)
	}
	if err := p.kv.DeleteAt(ctx, name, ent.Revision()); err != nil {
		if queue.IsConflict(err) {
			return p.remove(ctx, name) // changed meanwhile (a pass): again
		}
		return fmt.Errorf("delete pool %s: %w", name, err)
	}
	return nil
}
