package executor

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// ErrNotFound is returned for an unknown task instance, variable, connection or XCom.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a request does not fit the record's current
// state in a way that is not a graph violation (another worker owns the try,
// a stale try, a duplicate activity).
var ErrConflict = errors.New("conflict")

// errUnchanged aborts a mutation that leaves the record as it is.
var errUnchanged = errors.New("unchanged")

// store keeps task-instance records in KV, with a read cache fed by a watch
// and by this executor's own writes: every unfinished record, and the most
// recently used finished ones (at most doneMax). Finished records beyond
// those are read from KV; lists of them page through the bucket's stream
// (listStored). counts holds how many records there are of each state,
// queue and DAG, so that a list's total needs no scan.
type store struct {
	kv  queue.Bucket
	log *slog.Logger
	// conf is the bucket of the snapshot a clean stop writes (see
	// loadIndexed).
	conf queue.Bucket
	// chunkBytes bounds a chunk of the snapshot's unfinished ids
	// (openChunkBytes; tests make it small).
	chunkBytes int
	// decoded counts the records decoded from storage while loading (the
	// start's reads: tests assert it does not grow with finished ones).
	decoded atomic.Int64

	// writing holds, by id, a record this executor is writing with a
	// compare-and-set whose answer has not come yet: the watch, which
	// often delivers the write before its answer, takes the record from
	// here instead of decoding the bytes it has just encoded. Under wmu,
	// not mu: noting a write takes no lock the readers of the cache wait
	// for.
	wmu     sync.Mutex
	writing map[string]*pendingWrite
	// awaits counts the waits awaitWrite began on a write under way.
	awaits atomic.Int64

	mu sync.RWMutex
	// live holds every unfinished record (not in a terminal state).
	live map[string]cachedRecord
	// done and order are the finished records' LRU: order's front is the
	// most recently used.
	done    map[string]*list.Element
	order   *list.List
	doneMax int
	counts  map[countKey]int
	// loaded is set once the watch has read every stored record.
	loaded bool
	// creating holds the records being created here, closed when stored.
	creating map[string]chan struct{}
	// forget, when set, is told of every record deleted.
	forget func(id string)
	// inDoubt, when set, is told of every record whose write failed with
	// its outcome unknown (no answer: NATS away, a timeout). Such a write
	// may still be stored, even after the failure was reported: the NATS
	// client keeps what it publishes while disconnected and sends it on
	// reconnecting. What follows the write (an activity or trigger
	// published) must then be done from the record read back
	// (reconcileInDoubt).
	inDoubt func(id string)
	// purged holds the records this executor's retention is deleting (not
	// cached any more, still counted until the watch reports the deletion).
	purged map[string]*activity.TaskInstance
	// uncounted is how many changes the counts may have missed (the
	// deletion of a record no longer in memory, made by another executor).
	uncounted int
	// onEnded, when set, is called (on the watch's goroutine) with a
	// record of a DAG run's task instance that the watch saw end and that
	// this executor did not write: another replica's end, which the DAG
	// run evaluation of this one must hear of too (dagTaskEnded).
	onEnded func(*activity.TaskInstance)
	// listeners are called (under mu: they must not block) with every
	// record cached, this executor's writes and the watch's.
	listeners    map[int]func(*activity.TaskInstance)
	nextListener int
	// watched is the highest revision the watch applied (or the revision
	// a load from the snapshot started from).
	watched uint64
}

// subscribe calls fn with every record the cache takes from now on (under
// the cache's lock: fn must not block or call the store); the returned
// function stops it.
func (s *store) subscribe(fn func(*activity.TaskInstance)) (unsubscribe func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners == nil {
		s.listeners = map[int]func(*activity.TaskInstance){}
	}
	id := s.nextListener
	s.nextListener++
	s.listeners[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.listeners, id)
	}
}

// pendingWrite is a record being written (store.writing): ti encoded is
// raw.
type pendingWrite struct {
	ti  *activity.TaskInstance
	raw []byte
	// done is closed when the write has ended (and, stored, is cached).
	done chan struct{}
}

// beginWrite notes a write of ti as raw under way (store.writing); the
// returned function ends the note. A second write of the same record
// under way at once replaces the first one's note: the watch decodes
// whatever no note matches.
func (s *store) beginWrite(ti *activity.TaskInstance, raw []byte) (end func()) {
	p := &pendingWrite{ti: ti, raw: raw, done: make(chan struct{})}
	s.wmu.Lock()
	s.writing[ti.ID] = p
	s.wmu.Unlock()
	return func() {
		s.wmu.Lock()
		if s.writing[ti.ID] == p {
			delete(s.writing, ti.ID)
		}
		s.wmu.Unlock()
		close(p.done)
	}
}

// awaitWrite waits until a write of record id under way here (the fast
// path of a mutation) has ended, its record cached when it was stored; it
// reports whether there was one. A request that overtook this executor's
// own write (an activity published beside the record's update, its
// …/run here first) sees the record as written once this returns.
func (s *store) awaitWrite(ctx context.Context, id string) bool {
	s.wmu.Lock()
	p := s.writing[id]
	s.wmu.Unlock()
	if p == nil {
		return false
	}
	s.awaits.Add(1)
	return waitDone(ctx, p.done)
}

// waitDone waits until done is closed or ctx ends; it reports whether
// there was anything to wait for (done not nil).
func waitDone(ctx context.Context, done <-chan struct{}) bool {
	if done == nil {
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return true
}

// countKey is what a list's total is counted by.
type countKey struct {
	state        activity.State
	queue, dagID string
}

func keyOf(ti *activity.TaskInstance) countKey {
	return countKey{state: ti.State, queue: ti.Queue, dagID: ti.DagID}
}

// cachedRecord is a record as stored at a KV revision. ti is shared with
// readers and never changed; a mutation decodes raw afresh.
type cachedRecord struct {
	ti  *activity.TaskInstance
	raw []byte
	rev uint64
}

func newStore(kv, conf queue.Bucket, doneMax int, log *slog.Logger) *store {
	return &store{kv: kv, conf: conf, chunkBytes: openChunkBytes, log: log, live: make(map[string]cachedRecord), done: make(map[string]*list.Element),
		order: list.New(), doneMax: max(doneMax, 1), counts: make(map[countKey]int), purged: make(map[string]*activity.TaskInstance),
		creating: make(map[string]chan struct{}), writing: make(map[string]*pendingWrite)}
}

// watch loads the cache, then feeds it until ctx is done. ready is closed
// once it is loaded: from the snapshot of the last clean stop when nothing
// changed since (loadIndexed), else from every stored record.
func (s *store) watch(ctx context.Context, ready chan<- struct{}) error {
	from, err := s.loadIndexed(ctx)
	if err != nil {
		return fmt.Errorf("load task instances: %w", err)
	}
	loaded := from > 0
	var lastAtStart uint64
	if !loaded {
		if _, lastAtStart, err = s.kv.Bounds(ctx); err != nil {
			return fmt.Errorf("load task instances: %w", err)
		}
	}
	err = s.kv.FollowFrom(ctx, from, func() {
		if loaded {
			// Loaded from the snapshot; the changes since (none after a
			// clean stop, unless another executor writes) are applied.
			close(ready)
			return
		}
		s.mu.Lock()
		s.loaded = true
		// Every value stored up to lastAtStart was read, also when the
		// last message is gone (a purge marker removed).
		s.watched = max(s.watched, lastAtStart)
		s.mu.Unlock()
		loaded = true
		close(ready)
	}, func(e queue.Entry) {
		if ti := s.apply(ctx, e); ti != nil && loaded && s.onEnded != nil {
			s.onEnded(ti)
		}
	})
	if err != nil {
		return fmt.Errorf("watch task instances: %w", err)
	}
	return nil
}

// apply caches a watched entry. It returns the record when it is a DAG
// run's task instance that ended with this entry (and the cache had it
// not ended): an end this executor learns of from the watch.
func (s *store) apply(ctx context.Context, e queue.Entry) *activity.TaskInstance {
	defer func() {
		s.mu.Lock()
		s.watched = max(s.watched, e.Revision())
		s.mu.Unlock()
	}()
	if !e.IsPut() {
		s.mu.Lock()
		if old, ok := s.peekLocked(e.Key()); ok {
			if old.rev < e.Revision() {
				s.dropLocked(e.Key(), old)
			}
		} else if p, ok := s.purged[e.Key()]; ok {
			s.countLocked(p, nil)
			delete(s.purged, e.Key())
		} else if s.loaded {
			// A finished record deleted by another executor's retention
			// after it left this one's cache: its count is not known.
			s.uncounted++
		}
		s.mu.Unlock()
		if s.forget != nil {
			s.forget(e.Key())
		}
		return nil
	}
	// Most updates are this executor's own writes, remembered already:
	// decode only what is new.
	s.mu.RLock()
	c, ok := s.peekLocked(e.Key())
	loaded := s.loaded
	_, creating := s.creating[e.Key()]
	s.mu.RUnlock()
	if ok && c.rev >= e.Revision() {
		return nil
	}
	if !ok && creating {
		// This executor's own create, whose acknowledgement the watch
		// overtook: createAsync remembers the record at this revision.
		return nil
	}
	var pw *pendingWrite
	if ok {
		s.wmu.Lock()
		pw = s.writing[e.Key()]
		s.wmu.Unlock()
	}
	var ti *activity.TaskInstance
	if pw != nil && bytes.Equal(pw.raw, e.Value()) {
		// This executor's own update, whose answer the watch overtook:
		// the record it encoded, not a decode of the same bytes.
		ti = pw.ti
	} else {
		if !loaded {
			s.decoded.Add(1)
		}
		var err error
		if ti, err = activity.UnmarshalRecord(e.Value()); err != nil {
			s.log.Warn("skip undecodable task instance", "ti_id", e.Key(), "err", err)
			return nil
		}
	}
	var prev *activity.TaskInstance
	if !ok && loaded {
		// A change of a record not in memory: a new one, or a finished one
		// evicted from the cache (retried, cleared), counted out of its
		// previous state.
		prev = s.previous(ctx, e.Key(), e.Revision())
	}
	s.remember(ti, e.Value(), e.Revision(), prev)
	if ti.DagRun != nil && ti.State.Terminal() && (!ok || !c.ti.State.Terminal()) {
		return ti
	}
	return nil
}

// previous returns the record key held before revision rev; nil when
// there was none.
func (s *store) previous(ctx context.Context, key string, rev uint64) *activity.TaskInstance {
	raw, ok, err := s.kv.Previous(ctx, key, rev)
	if err != nil {
		s.log.Debug("count a changed record: previous revision", "ti_id", key, "err", err)
		s.mu.Lock()
		s.uncounted++
		s.mu.Unlock()
		return nil
	}
	if !ok {
		return nil
	}
	old, err := activity.UnmarshalRecord(raw)
	if err != nil {
		return nil
	}
	return old
}

// countLocked moves one record from old's count to new's (either nil).
func (s *store) countLocked(old, new *activity.TaskInstance) {
	if old != nil {
		k := keyOf(old)
		if s.counts[k]--; s.counts[k] <= 0 {
			delete(s.counts, k)
		}
	}
	if new != nil {
		s.counts[keyOf(new)]++
	}
}

// peekLocked returns the cached record id without touching the LRU.
func (s *store) peekLocked(id string) (cachedRecord, bool) {
	if c, ok := s.live[id]; ok {
		return c, true
	}
	if el, ok := s.done[id]; ok {
		return el.Value.(cachedRecord), true
	}
	return cachedRecord{}, false
}

// dropLocked removes a cached record (deleted) and its count.
func (s *store) dropLocked(id string, old cachedRecord) {
	delete(s.live, id)
	if el, ok := s.done[id]; ok {
		s.order.Remove(el)
		delete(s.done, id)
	}
	s.countLocked(old.ti, nil)
}

// remember caches a record at revision rev unless a later one is cached, so
// a read that follows a write by this executor sees it without waiting for
// the watch. The counts move from the cached record, or, for one not in
// memory, from prev (the record before this write; nil for a new one).
func (s *store) remember(ti *activity.TaskInstance, raw []byte, rev uint64, prev *activity.TaskInstance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.peekLocked(ti.ID)
	if had && old.rev >= rev {
		return
	}
	if had {
		prev = old.ti
	}
	s.countLocked(prev, ti)
	c := cachedRecord{ti: ti, raw: raw, rev: rev}
	for _, fn := range s.listeners {
		fn(ti)
	}
	if !ti.State.Terminal() {
		if el, ok := s.done[ti.ID]; ok {
			s.order.Remove(el)
			delete(s.done, ti.ID)
		}
		s.live[ti.ID] = c
		return
	}
	delete(s.live, ti.ID)
	if el, ok := s.done[ti.ID]; ok {
		el.Value = c
		s.order.MoveToFront(el)
		return
	}
	s.done[ti.ID] = s.order.PushFront(c)
	for s.order.Len() > s.doneMax {
		el := s.order.Back()
		s.order.Remove(el)
		delete(s.done, el.Value.(cachedRecord).ti.ID)
	}
}

// cached returns a record from the cache (marking a finished one used).
func (s *store) cached(id string) (cachedRecord, bool) {
	s.mu.RLock()
	c, ok := s.live[id]
	s.mu.RUnlock()
	if ok {
		return c, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.done[id]
	if !ok {
		return cachedRecord{}, false
	}
	s.order.MoveToFront(el)
	return el.Value.(cachedRecord), true
}

// purging takes a finished record this executor's retention is about to
// purge out of the cache; it stays counted until the watch reports its
// deletion. purgeFailed undoes the mark of one that was kept.
func (s *store) purging(ti *activity.TaskInstance, rev uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.peekLocked(ti.ID); ok && c.rev != rev {
		return false // changed meanwhile: kept
	}
	delete(s.live, ti.ID)
	if el, ok := s.done[ti.ID]; ok {
		s.order.Remove(el)
		delete(s.done, ti.ID)
	}
	s.purged[ti.ID] = ti
	return true
}

func (s *store) purgeFailed(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.purged, id)
}

// identity returns a record's immutable fields (ids, queue) from the cache,
// or from KV when it is not cached yet.
func (s *store) identity(ctx context.Context, id string) (*activity.TaskInstance, error) {
	if c, ok := s.cached(id); ok {
		return c.ti, nil
	}
	return s.get(ctx, id)
}

// get reads a record from KV (authoritative).
func (s *store) get(ctx context.Context, id string) (*activity.TaskInstance, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, queue.ErrKeyNotFound) || errors.Is(err, queue.ErrInvalidKey) {
		return nil, fmt.Errorf("task instance %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get task instance %s: %w", id, err)
	}
	return activity.UnmarshalRecord(e.Value())
}

// create stores a new record; it fails if the id exists.
func (s *store) create(ctx context.Context, ti *activity.TaskInstance) error {
	return <-s.createAsync(ctx, ti)
}

// createAsync starts storing a new record and returns where its outcome
// will be sent. From the call on, a mutation of the record that finds it
// missing waits for the create to end first, so the record's activity may
// be published while it is stored.
func (s *store) createAsync(ctx context.Context, ti *activity.TaskInstance) <-chan error {
	done := make(chan struct{})
	s.mu.Lock()
	s.creating[ti.ID] = done
	s.mu.Unlock()
	out := make(chan error, 1)
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.creating, ti.ID)
			s.mu.Unlock()
			close(done)
		}()
		b, err := ti.MarshalRecord()
		if err != nil {
			out <- err
			return
		}
		rev, err := s.kv.Create(ctx, ti.ID, b)
		if err != nil {
			if !queue.IsConflict(err) && !errors.Is(err, queue.ErrInvalidKey) {
				// No answer: the record may be stored later all the same,
				// queued on an activity nobody published.
				s.doubt(ti.ID)
			}
			out <- fmt.Errorf("create task instance %s: %w", ti.ID, err)
			return
		}
		s.remember(ti, b, rev, nil)
		out <- nil
	}()
	return out
}

// createdMeanwhile reports whether a record found missing may exist now:
// a create of it here was under way (it waits for its end) or has ended
// (a create caches its record before it stops counting as under way).
func (s *store) createdMeanwhile(ctx context.Context, id string) bool {
	if s.awaitCreate(ctx, id) {
		return true
	}
	_, ok := s.cached(id)
	return ok
}

// awaitCreate waits until a create of id under way here ends; it reports
// whether there was one.
func (s *store) awaitCreate(ctx context.Context, id string) bool {
	s.mu.RLock()
	done := s.creating[id]
	s.mu.RUnlock()
	return waitDone(ctx, done)
}

// mutate applies fn to the current record with compare-and-set, retrying on
// conflicting writers. fn returning errUnchanged ends without a write; the
// record is returned either way. Other errors abort.
func (s *store) mutate(ctx context.Context, id string, fn func(*activity.TaskInstance) error) (*activity.TaskInstance, error) {
	return s.mutateOnce(ctx, id, fn, nil, true)
}

// mutateBeside is mutate, and on the fast path (the cached record changed
// and written at its revision: nearly always) it calls beside with the
// record about to be written just before sending the write, so that what
// follows the write (an activity or a trigger published) travels with it
// instead of one round trip after it. beside must not change the record
// and must not block: it starts its work and returns where its outcome
// will be sent (nil for none). started is that channel when the record
// beside saw is the one stored; nil otherwise (beside not called: the
// record was not cached, or its write met another writer's and the
// record was written again, or the mutation failed): then the caller
// does what follows after the write, as mutate's callers do. What beside
// started for a record that was not stored has gone out all the same:
// what follows a write must be harmless without it (a stale activity or
// trigger is refused or dropped).
func (s *store) mutateBeside(ctx context.Context, id string, fn func(*activity.TaskInstance) error, beside func(*activity.TaskInstance) <-chan error) (ti *activity.TaskInstance, started <-chan error, err error) {
	var (
		ch   <-chan error
		sent *activity.TaskInstance
	)
	wrap := func(ti *activity.TaskInstance) {
		if ch == nil {
			sent, ch = ti, beside(ti)
		}
	}
	ti, err = s.mutateOnce(ctx, id, fn, wrap, true)
	if ch != nil && (err != nil || ti != sent) {
		<-ch // for a record that was not stored
		ch = nil
	}
	return ti, ch, err
}

// mutateOnce is mutate; again allows one more attempt when the record is
// missing but was being created here. beside, when not nil, is called with
// the record of a fast-path write just before it is sent (mutateBeside).
func (s *store) mutateOnce(ctx context.Context, id string, fn func(*activity.TaskInstance) error, beside func(*activity.TaskInstance), again bool) (*activity.TaskInstance, error) {
	// Fast path: the cached record at its revision, one round trip. If the
	// cache is behind, or fn refuses what may be a stale record, the
	// authoritative path below decides.
	if c, ok := s.cached(id); ok {
		// A deep copy to change: the cached record stays as stored.
		ti := c.ti.Clone()
		// errUnchanged or a refusal may come from a stale record: the
		// authoritative path decides those.
		if err := fn(ti); err == nil {
			ti.UpdatedAt = time.Now().UTC()
			b, merr := ti.MarshalRecord()
			if merr != nil {
				return nil, merr
			}
			end := s.beginWrite(ti, b)
			if beside != nil {
				beside(ti)
			}
			rev, uerr := s.kv.Update(ctx, id, b, c.rev)
			if uerr == nil {
				s.remember(ti, b, rev, c.ti)
				end()
				return ti, nil
			}
			end()
			if !queue.IsConflict(uerr) {
				s.doubt(id)
				return nil, fmt.Errorf("update task instance %s: %w", id, uerr)
			}
		}
	}
	var (
		last, prev *activity.TaskInstance
		lastRaw    []byte
		wrote      bool // a write was sent: a failure after it is in doubt
	)
	rev, err := queue.UpdateCAS(ctx, s.kv, id, func(old []byte) ([]byte, error) {
		wrote = false
		if old == nil {
			return nil, fmt.Errorf("task instance %s: %w", id, ErrNotFound)
		}
		ti, err := activity.UnmarshalRecord(old)
		if err != nil {
			return nil, err
		}
		if prev, err = activity.UnmarshalRecord(old); err != nil {
			return nil, err
		}
		if err := fn(ti); err != nil {
			last = ti
			return nil, err
		}
		ti.UpdatedAt = time.Now().UTC()
		last = ti
		if lastRaw, err = ti.MarshalRecord(); err != nil {
			return nil, err
		}
		wrote = true
		return lastRaw, nil
	})
	if errors.Is(err, errUnchanged) {
		return last, nil
	}
	if errors.Is(err, queue.ErrInvalidKey) {
		// No record has an id that is no key (found by fuzzing: a 500).
		return nil, fmt.Errorf("task instance %s: %w", id, ErrNotFound)
	}
	if again && errors.Is(err, ErrNotFound) && s.createdMeanwhile(ctx, id) {
		// Its activity overtook the record being stored: try again now.
		return s.mutateOnce(ctx, id, fn, beside, false)
	}
	if err != nil {
		if wrote {
			s.doubt(id)
		}
		return last, err
	}
	s.remember(last, lastRaw, rev, prev)
	return last, nil
}

// doubt reports a write of record id whose outcome is unknown (inDoubt).
func (s *store) doubt(id string) {
	if s.inDoubt != nil {
		s.inDoubt(id)
	}
}

// Filter selects task instances.
type Filter struct {
	States []activity.State
	Queue  string
	DagID  string
	// Limit bounds a page; 0 means listMax.
	Limit int
	// Cursor continues a list where the page that answered it ended.
	Cursor string
}

// listMax bounds a page of a list.
const listMax = 10_000

func (f Filter) match(ti *activity.TaskInstance) bool {
	if f.Queue != "" && ti.Queue != f.Queue {
		return false
	}
	if f.DagID != "" && ti.DagID != f.DagID {
		return false
	}
	return f.matchState(ti.State)
}

func (f Filter) matchState(st activity.State) bool {
	if len(f.States) == 0 {
		return true
	}
	return slices.Contains(f.States, st)
}

// finished reports whether f may select finished records.
func (f Filter) finished() bool {
	if len(f.States) == 0 {
		return true
	}
	for _, st := range f.States {
		if st.Terminal() {
			return true
		}
	}
	return false
}

// Page is one page of a list.
type Page struct {
	// TIs are the records: unfinished ones first, newest queued first,
	// then finished ones, most recently finished first.
	TIs []*activity.TaskInstance
	// Total is how many records match in all.
	Total int
	// Next is the cursor of the next page; empty at the end.
	Next string
}

// list returns a page of the matching records. Unfinished ones come from
// memory; finished ones from the bucket's stream, read backwards from the
// cursor in windows (holding one window at a time), each confirmed current.
// The cursor is "l<n>" (the unfinished records from the n-th) or "s<rev>"
// (finished records stored below revision rev).
func (s *store) list(ctx context.Context, f Filter) (Page, error) {
	limit := f.Limit
	if limit <= 0 || limit > listMax {
		limit = listMax
	}
	var page Page
	s.mu.RLock()
	for k, n := range s.counts {
		if (f.Queue == "" || k.queue == f.Queue) && (f.DagID == "" || k.dagID == f.DagID) && f.matchState(k.state) {
			page.Total += n
		}
	}
	s.mu.RUnlock()
	skip, before := 0, uint64(0)
	switch {
	case f.Cursor == "":
	case f.Cursor[0] == 'l':
		n, err := strconv.Atoi(f.Cursor[1:])
		if err != nil || n < 0 {
			return page, badRequest("cursor %q: not one this API answered", truncateValue(f.Cursor))
		}
		skip = n
	case f.Cursor[0] == 's':
		n, err := strconv.ParseUint(f.Cursor[1:], 10, 64)
		if err != nil {
			return page, badRequest("cursor %q: not one this API answered", truncateValue(f.Cursor))
		}
		before, skip = n, -1
	default:
		return page, badRequest("cursor %q: not one this API answered", truncateValue(f.Cursor))
	}
	if skip >= 0 {
		live := s.liveMatching(f)
		if skip < len(live) {
			end := min(len(live), skip+limit)
			page.TIs = live[skip:end]
			if end < len(live) {
				page.Next = "l" + strconv.Itoa(end)
				return page, nil
			}
		}
	}
	if !f.finished() || len(page.TIs) >= limit {
		if f.finished() {
			page.Next = "s0"
		}
		return page, nil
	}
	got, next, err := s.listStored(ctx, f, before, limit-len(page.TIs))
	if err != nil {
		return page, err
	}
	page.TIs = append(page.TIs, got...)
	if next > 0 {
		page.Next = "s" + strconv.FormatUint(next, 10)
	}
	return page, nil
}

// liveMatching returns the matching unfinished records, newest queued
// first.
func (s *store) liveMatching(f Filter) []*activity.TaskInstance {
	s.mu.RLock()
	out := make([]*activity.TaskInstance, 0, 64)
	for _, c := range s.live {
		if f.match(c.ti) {
			out = append(out, c.ti)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.QueuedAt != nil && b.QueuedAt != nil && !a.QueuedAt.Equal(*b.QueuedAt) {
			return a.QueuedAt.After(*b.QueuedAt)
		}
		return a.ID > b.ID
	})
	return out
}

// scanWindow is how many revisions listStored reads at a time, at first.
const scanWindow = 256

// listStored returns up to n finished records matching f stored below
// revision before (0: from the newest), newest first, and the revision to
// continue below (0 when the bucket is read to its start).
func (s *store) listStored(ctx context.Context, f Filter, before uint64, n int) ([]*activity.TaskInstance, uint64, error) {
	first, last, err := s.kv.Bounds(ctx)
	if err != nil {
		return nil, 0, err
	}
	if before == 0 || before > last+1 {
		before = last + 1
	}
	type cand struct {
		ti  *activity.TaskInstance
		rev uint64
	}
	var out []*activity.TaskInstance
	seen := map[string]bool{}
	window := uint64(scanWindow)
	for before > first && len(out) < n {
		from := first
		if before > window && before-window > first {
			from = before - window
		}
		var sel []cand
		err := s.kv.Scan(ctx, from, before, func(v queue.StoredValue) bool {
			ti, err := activity.UnmarshalRecord(v.Value)
			if err == nil && ti.State.Terminal() && f.match(ti) {
				sel = append(sel, cand{ti: ti, rev: v.Revision})
			}
			return true
		})
		if err != nil {
			return nil, 0, err
		}
		// Newest first; within the window, take records until n, each
		// confirmed as its key's current revision.
		cut := from
		for i := len(sel) - 1; i >= 0 && len(out) < n; i-- {
			c := sel[i]
			cut = c.rev
			if seen[c.ti.ID] {
				continue
			}
			seen[c.ti.ID] = true
			cur, err := s.kv.Latest(ctx, c.ti.ID, c.rev)
			if err != nil {
				return nil, 0, err
			}
			if cur && !s.isLive(c.ti.ID) {
				out = append(out, c.ti)
			}
		}
		if len(out) >= n {
			if cut <= first {
				return out, 0, nil
			}
			return out, cut, nil
		}
		before = from
		window = min(window*2, 1<<14)
	}
	return out, 0, nil
}

// isLive reports whether memory holds record id as unfinished. A record
// that ended in the bucket while memory still holds it unfinished (its end
// not remembered yet) was listed from memory already: the finished ones
// read from the bucket leave it out, so that a list shows it once.
func (s *store) isLive(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.live[id]
	return ok
}

// each calls fn for every unfinished record in state st.
func (s *store) each(st activity.State, fn func(*activity.TaskInstance)) {
	s.mu.RLock()
	var sel []*activity.TaskInstance
	for _, c := range s.live {
		if c.ti.State == st {
			sel = append(sel, c.ti)
		}
	}
	s.mu.RUnlock()
	for _, ti := range sel {
		fn(ti)
	}
}
