package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
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

// store keeps task-instance records in KV and a read cache fed by a watch
// and by this executor's own writes.
type store struct {
	kv  queue.Bucket
	log *slog.Logger

	mu    sync.RWMutex
	cache map[string]cachedRecord
	// creating holds the records being created here, closed when stored.
	creating map[string]chan struct{}
	// forget, when set, is told of every record deleted.
	forget func(id string)
	// onEnded, when set, is called (on the watch's goroutine) with a
	// record of a DAG run's task instance that the watch saw end and that
	// this executor did not write: another replica's end, which the DAG
	// run evaluation of this one must hear of too (dagTaskEnded).
	onEnded func(*activity.TaskInstance)
	// listeners are called (under mu: they must not block) with every
	// record cached, this executor's writes and the watch's.
	listeners    map[int]func(*activity.TaskInstance)
	nextListener int
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

// cachedRecord is a record as stored at a KV revision. ti is shared with
// readers and never changed; a mutation decodes raw afresh.
type cachedRecord struct {
	ti  *activity.TaskInstance
	raw []byte
	rev uint64
}

func newStore(kv queue.Bucket, log *slog.Logger) *store {
	return &store{kv: kv, log: log, cache: make(map[string]cachedRecord), creating: make(map[string]chan struct{})}
}

// watch feeds the cache until ctx is done. ready is closed once the initial
// values are loaded.
func (s *store) watch(ctx context.Context, ready chan<- struct{}) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch task instances: %w", err)
	}
	defer func() { _ = w.Stop() }()
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e.CaughtUp() {
				if !loaded {
					loaded = true
					close(ready)
				}
				continue
			}
			if ti := s.apply(e); ti != nil && loaded && s.onEnded != nil {
				s.onEnded(ti)
			}
		}
	}
}

// apply caches a watched entry. It returns the record when it is a DAG
// run's task instance that ended with this entry (and the cache had it
// not ended): an end this executor learns of from the watch.
func (s *store) apply(e queue.Entry) *activity.TaskInstance {
	if !e.IsPut() {
		s.mu.Lock()
		if old, ok := s.cache[e.Key()]; ok && old.rev < e.Revision() {
			delete(s.cache, e.Key())
		}
		s.mu.Unlock()
		if s.forget != nil {
			s.forget(e.Key())
		}
		return nil
	}
	// Most updates are this executor's own writes, remembered already:
	// decode only what is new.
	c, had := s.cached(e.Key())
	if had && c.rev >= e.Revision() {
		return nil
	}
	ti, err := activity.UnmarshalRecord(e.Value())
	if err != nil {
		s.log.Warn("skip undecodable task instance", "ti_id", e.Key(), "err", err)
		return nil
	}
	s.remember(ti, e.Value(), e.Revision())
	if ti.DagRun != nil && ti.State.Terminal() && (!had || !c.ti.State.Terminal()) {
		return ti
	}
	return nil
}

// remember caches a record at revision rev unless a later one is cached, so
// a read that follows a write by this executor sees it without waiting for
// the watch.
func (s *store) remember(ti *activity.TaskInstance, raw []byte, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.cache[ti.ID]; ok && old.rev >= rev {
		return
	}
	s.cache[ti.ID] = cachedRecord{ti: ti, raw: raw, rev: rev}
	for _, fn := range s.listeners {
		fn(ti)
	}
}

func (s *store) cached(id string) (cachedRecord, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.cache[id]
	return c, ok
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
			out <- fmt.Errorf("create task instance %s: %w", ti.ID, err)
			return
		}
		s.remember(ti, b, rev)
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
	if done == nil {
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return true
}

// mutate applies fn to the current record with compare-and-set, retrying on
// conflicting writers. fn returning errUnchanged ends without a write; the
// record is returned either way. Other errors abort.
func (s *store) mutate(ctx context.Context, id string, fn func(*activity.TaskInstance) error) (*activity.TaskInstance, error) {
	return s.mutateOnce(ctx, id, fn, true)
}

// mutateOnce is mutate; again allows one more attempt when the record is
// missing but was being created here.
func (s *store) mutateOnce(ctx context.Context, id string, fn func(*activity.TaskInstance) error, again bool) (*activity.TaskInstance, error) {
	// Fast path: the cached record at its revision, one round trip. If the
	// cache is behind, or fn refuses what may be a stale record, the
	// authoritative path below decides.
	if c, ok := s.cached(id); ok {
		ti, err := activity.UnmarshalRecord(c.raw)
		if err == nil {
			err = fn(ti)
			// errUnchanged or a refusal may come from a stale record: the
			// authoritative path decides those.
			if err == nil {
				ti.UpdatedAt = time.Now().UTC()
				b, merr := ti.MarshalRecord()
				if merr != nil {
					return nil, merr
				}
				rev, uerr := s.kv.Update(ctx, id, b, c.rev)
				if uerr == nil {
					s.remember(ti, b, rev)
					return ti, nil
				}
				if !queue.IsConflict(uerr) {
					return nil, fmt.Errorf("update task instance %s: %w", id, uerr)
				}
			}
		}
	}
	var (
		last    *activity.TaskInstance
		lastRaw []byte
	)
	rev, err := queue.UpdateCAS(ctx, s.kv, id, func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("task instance %s: %w", id, ErrNotFound)
		}
		ti, err := activity.UnmarshalRecord(old)
		if err != nil {
			return nil, err
		}
		if err := fn(ti); err != nil {
			last = ti
			return nil, err
		}
		ti.UpdatedAt = time.Now().UTC()
		last = ti
		lastRaw, err = ti.MarshalRecord()
		return lastRaw, err
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
		return s.mutateOnce(ctx, id, fn, false)
	}
	if err != nil {
		return last, err
	}
	s.remember(last, lastRaw, rev)
	return last, nil
}

// Filter selects task instances from the cache.
type Filter struct {
	States []activity.State
	Queue  string
	DagID  string
	Limit  int
}

func (f Filter) match(ti *activity.TaskInstance) bool {
	if f.Queue != "" && ti.Queue != f.Queue {
		return false
	}
	if f.DagID != "" && ti.DagID != f.DagID {
		return false
	}
	if len(f.States) == 0 {
		return true
	}
	for _, s := range f.States {
		if ti.State == s {
			return true
		}
	}
	return false
}

// list returns matching records, newest first, and the number that matched.
func (s *store) list(f Filter) ([]*activity.TaskInstance, int) {
	s.mu.RLock()
	out := make([]*activity.TaskInstance, 0, 64)
	for _, c := range s.cache {
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
	total := len(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, total
}

// each calls fn for every cached record in state st.
func (s *store) each(st activity.State, fn func(*activity.TaskInstance)) {
	s.mu.RLock()
	var sel []*activity.TaskInstance
	for _, c := range s.cache {
		if c.ti.State == st {
			sel = append(sel, c.ti)
		}
	}
	s.mu.RUnlock()
	for _, ti := range sel {
		fn(ti)
	}
}
