package executor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

// queuedRecord is a new queued record id, as a submit makes it.
func queuedRecord(id string) *activity.TaskInstance {
	at := time.Now().UTC()
	return &activity.TaskInstance{ID: id, DagID: "d", TaskID: id, RunID: "r", MapIndex: -1, Queue: "q",
		State: activity.StateQueued, TryNumber: 1, MaxTries: 1, QueuedAt: &at, UpdatedAt: at,
		Entrypoint: activity.Entrypoint{Command: []string{"true"}}}
}

// putRecord stores a record as the executor would, bypassing it.
func putRecord(t *testing.T, qc *queue.Client, id, q string, st activity.State, at time.Time) {
	t.Helper()
	ti := &activity.TaskInstance{ID: id, DagID: "d", TaskID: id, RunID: "r", MapIndex: -1, Queue: q, State: st,
		TryNumber: 1, MaxTries: 1, QueuedAt: &at, UpdatedAt: at, Entrypoint: activity.Entrypoint{Command: []string{"true"}}}
	if st.Terminal() {
		ti.EndDate = &at
	}
	b, err := ti.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qc.Bucket(queue.BucketTaskInstances).Put(t.Context(), id, b); err != nil {
		t.Fatal(err)
	}
}

// listAll pages through f with limit per page and returns the ids in
// order and the totals each page answered.
func listAll(t *testing.T, e *Executor, f Filter) ([]string, []int) {
	t.Helper()
	var ids []string
	var totals []int
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("list does not end")
		}
		p, err := e.List(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		if f.Limit > 0 && len(p.TIs) > f.Limit {
			t.Fatalf("page of %d, limit %d", len(p.TIs), f.Limit)
		}
		for _, ti := range p.TIs {
			ids = append(ids, ti.ID)
		}
		totals = append(totals, p.Total)
		if p.Next == "" {
			return ids, totals
		}
		f.Cursor = p.Next
	}
}

// TestFinishedRecordsBeyondTheCache: with a cache of 5 finished records,
// an executor started on 40 finished and 3 queued records holds the 3 and
// at most 5 others; lists page through storage (every record once, newest
// first, totals exact on every page), also after changes made while it
// runs (new records through the watch, an evicted failed record retried).
func TestFinishedRecordsBeyondTheCache(t *testing.T) {
	ns := natstest.RunServer(t)
	qc, err := queue.New(t.Context(), natstest.Connect(t, ns), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Add(-time.Hour)
	for i := range 40 {
		st := activity.StateSuccess
		if i%2 == 1 {
			st = activity.StateFailed
		}
		putRecord(t, qc, fmt.Sprintf("f%02d", i), []string{"q1", "q2"}[i%4/2], st, base.Add(time.Duration(i)*time.Second))
	}
	for i := range 3 {
		putRecord(t, qc, fmt.Sprintf("l%d", i), "q1", activity.StateQueued, base.Add(time.Duration(100+i)*time.Second))
	}
	f := startOn(t, qc, Config{RecordCache: 5})
	s := f.ex.store
	s.mu.RLock()
	live, done := len(s.live), len(s.done)
	s.mu.RUnlock()
	if live != 3 || done > 5 {
		t.Fatalf("in memory: %d unfinished, %d finished; want 3 and at most 5", live, done)
	}

	ids, totals := listAll(t, f.ex, Filter{States: []activity.State{activity.StateSuccess}, Limit: 7})
	want := []string{}
	for i := 38; i >= 0; i -= 2 {
		want = append(want, fmt.Sprintf("f%02d", i))
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("successes, newest first:\n got %v\nwant %v", ids, want)
	}
	for _, n := range totals {
		if n != 20 {
			t.Errorf("page totals %v, want 20 each", totals)
			break
		}
	}
	ids, totals = listAll(t, f.ex, Filter{Limit: 10})
	if len(ids) != 43 || ids[0] != "l2" || ids[2] != "l0" || ids[3] != "f39" || ids[42] != "f00" || totals[0] != 43 {
		t.Errorf("all: %d ids %v, totals %v; want 43: l2 l1 l0 f39 … f00", len(ids), ids, totals)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("%s listed twice", id)
		}
		seen[id] = true
	}
	if ids, totals := listAll(t, f.ex, Filter{Queue: "q2", States: []activity.State{activity.StateFailed}}); len(ids) != 10 || totals[0] != 10 {
		t.Errorf("q2 failed: %v, totals %v; want 10", ids, totals)
	}
	if _, err := f.ex.List(t.Context(), Filter{Cursor: "x1"}); err == nil {
		t.Error("a made-up cursor was accepted")
	}
	// An evicted record is read from storage.
	if ti, err := f.ex.Get(t.Context(), "f01"); err != nil || ti.State != activity.StateFailed {
		t.Errorf("Get(f01) = %v, %v", ti, err)
	}

	// Changes while it runs: a record written by someone else (the watch)
	// and an evicted failed record retried here.
	putRecord(t, qc, "f40", "q1", activity.StateSuccess, time.Now().UTC())
	if _, err := f.ex.Retry(t.Context(), "f03"); err != nil {
		t.Fatal(err)
	}
	f.take("q2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		p1, err1 := f.ex.List(t.Context(), Filter{States: []activity.State{activity.StateSuccess}, Limit: 1})
		p2, err2 := f.ex.List(t.Context(), Filter{States: []activity.State{activity.StateFailed}, Limit: 1})
		p3, err3 := f.ex.List(t.Context(), Filter{States: []activity.State{activity.StateQueued}})
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		if p1.Total == 21 && p2.Total == 19 && p3.Total == 4 && len(p3.TIs) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("totals success %d, failed %d, queued %d (%d listed); want 21, 19, 4", p1.Total, p2.Total, p3.Total, len(p3.TIs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ids, _ := listAll(t, f.ex, Filter{States: []activity.State{activity.StateFailed}, Limit: 4}); len(ids) != 19 {
		t.Errorf("failed after the retry: %d %v, want 19", len(ids), ids)
	}
}

// The watch takes this executor's own update, when it comes before the
// update's answer, from the write under way (the record encoded) instead
// of decoding the bytes; another writer's change is decoded. The test
// keeps the write noted until the watch has applied it, so the watch
// always comes first.
func TestWatchTakesOwnUpdateFromMemory(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	s := newStore(f.q.Bucket(queue.BucketTaskInstances), f.q.Bucket(queue.BucketConfig), 10, f.ex.log)
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	watched := make(chan error, 1)
	go func() { watched <- s.watch(ctx, ready) }()
	defer func() {
		cancel()
		<-watched
	}()
	<-ready
	ti := queuedRecord("own")
	if err := s.create(t.Context(), ti); err != nil {
		t.Fatal(err)
	}
	waitApplied := func(rev uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s.mu.RLock()
			w := s.watched
			s.mu.RUnlock()
			if w >= rev {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("watch at revision %d, want %d", w, rev)
			}
			time.Sleep(time.Millisecond)
		}
	}
	c, _ := s.cached("own")
	running := c.ti.Clone()
	if err := running.SetState(activity.StateRunning, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, err := running.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	end := s.beginWrite(running, raw)
	rev, err := s.kv.Update(t.Context(), "own", raw, c.rev)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(rev)
	end()
	got, _ := s.cached("own")
	if got.rev != rev || got.ti != running {
		t.Fatalf("cached %p at revision %d, want the written record %p at %d (decoded instead of taken)", got.ti, got.rev, running, rev)
	}

	// Another writer's change (other bytes than the noted write) is decoded.
	other := running.Clone()
	other.Hostname = "elsewhere"
	otherRaw, err := other.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	end = s.beginWrite(running, raw)
	rev, err = s.kv.Update(t.Context(), "own", otherRaw, rev)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(rev)
	end()
	got, _ = s.cached("own")
	if got.rev != rev || got.ti == running || got.ti.Hostname != "elsewhere" {
		t.Fatalf("cached %+v at revision %d, want the other writer's record at %d", got.ti, got.rev, rev)
	}
}

// mutateBeside calls beside with the record about to be written, before
// its write reaches KV, and hands back what beside started when that
// record is the one stored; when the cached record was stale (another
// writer's change), the record is written again from KV and the caller
// gets nothing back, so it does what follows itself. awaitWrite waits
// for a write under way and reports one.
func TestMutateBesideStartsWithTheWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	// No watch: the cache changes only with this store's own writes, so
	// another writer's change leaves it stale for certain.
	s := newStore(f.q.Bucket(queue.BucketTaskInstances), f.q.Bucket(queue.BucketConfig), 10, f.ex.log)
	ti := queuedRecord("b")
	if err := s.create(t.Context(), ti); err != nil {
		t.Fatal(err)
	}
	c, _ := s.cached("b")
	toRunning := func(ti *activity.TaskInstance) error { return ti.SetState(activity.StateRunning, "", time.Now()) }
	calls := 0
	var sawRev uint64
	var sawState activity.State
	beside := func(ti *activity.TaskInstance) <-chan error {
		calls++
		sawState = ti.State
		if e, err := s.kv.Get(t.Context(), "b"); err == nil {
			sawRev = e.Revision()
		}
		s.wmu.Lock()
		noted := s.writing["b"] != nil
		s.wmu.Unlock()
		if !noted {
			t.Error("beside called with no write of the record noted (a …/run overtaking it could not wait for it)")
		}
		out := make(chan error, 1)
		out <- nil
		return out
	}
	got, started, err := s.mutateBeside(t.Context(), "b", toRunning, beside)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || sawState != activity.StateRunning || sawRev != c.rev {
		t.Fatalf("beside called %d times with state %s at KV revision %d; want once, running, before the write (revision %d)", calls, sawState, sawRev, c.rev)
	}
	if started == nil || got.State != activity.StateRunning {
		t.Fatalf("fast path: started %v, record %s; want beside's channel and the running record", started, got.State)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}

	// Another writer's change: the cached record is stale, its write
	// conflicts, and the record is written again from KV.
	c, _ = s.cached("b")
	other := c.ti.Clone()
	other.Hostname = "elsewhere"
	raw, err := other.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.kv.Update(t.Context(), "b", raw, c.rev); err != nil {
		t.Fatal(err)
	}
	calls = 0
	var lent chan error
	got, started, err = s.mutateBeside(t.Context(), "b", func(ti *activity.TaskInstance) error {
		return ti.SetState(activity.StateSuccess, "", time.Now())
	}, func(*activity.TaskInstance) <-chan error {
		calls++
		lent = make(chan error, 1)
		lent <- nil
		return lent
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != activity.StateSuccess || got.Hostname != "elsewhere" {
		t.Fatalf("record %s on %q, want success over the other writer's change", got.State, got.Hostname)
	}
	if calls != 1 || started != nil || len(lent) != 0 {
		t.Fatalf("after a conflict: beside called %d times, started %v, its outcome left unread: %v; want one call, nil, drained", calls, started, len(lent) != 0)
	}

	// awaitWrite: none under way, then one until it ends.
	if s.awaitWrite(t.Context(), "b") {
		t.Fatal("awaitWrite found a write when none was under way")
	}
	end := s.beginWrite(got, raw)
	waited := make(chan bool, 1)
	go func() { waited <- s.awaitWrite(t.Context(), "b") }()
	deadline := time.Now().Add(10 * time.Second)
	for s.awaits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-waited:
		t.Fatal("awaitWrite returned while the write was under way")
	default:
	}
	end()
	if !<-waited {
		t.Fatal("awaitWrite did not report the write it waited for")
	}
}
