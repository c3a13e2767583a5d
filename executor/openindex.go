package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// The start without reading every finished record.
//
// The task_instances_open bucket (queue.BucketOpenTaskInstances) is an
// index of the unfinished records: one empty value per record id. Every
// write keeps it: the index entry is put beside (a create) or before (a
// retry of a finished record) the write of a record unfinished from
// nothing or from a terminal state, and removed (its delete marker expires
// after a second) only after the record was written terminal. An entry
// may be missing only after a crash between the two writes or a failed
// put; both make the next start read every record (a crash leaves no
// snapshot of the last revision; a failed put stops this executor from
// saving one), which repairs the index. An entry may outlive its record's end
// (an executor that died between the two writes): a load drops it.
//
// A clean stop writes a snapshot of the counts (records per state, queue
// and DAG) with the bucket's last revision, once its watch has applied
// every change up to it (countsSnapshot, in the config bucket). A start
// that finds the bucket's last revision still equal to the snapshot's
// (nothing written since) takes the counts from the snapshot and reads
// only the records the index names (loadIndexed): its time and memory
// follow the unfinished records, not the finished ones. Otherwise (no
// snapshot: a store made before the index existed, or a crash, or another
// executor's writes since) it reads every record as before and then
// completes the index (reindex): that is the migration of an existing
// store, and the next clean stop writes the snapshot.

// countsSnapshotKey is the config bucket's key of the counts' snapshot.
const countsSnapshotKey = "task_instance_counts"

// countsSnapshotMax bounds the snapshot's size (the config bucket's
// values are NATS messages): with more kinds of records than fit, no
// snapshot is written and starts read every record.
const countsSnapshotMax = 512 << 10

// countsSnapshot is the counts of records at Revision of the
// task_instances bucket.
type countsSnapshot struct {
	Revision  uint64        `json:"revision"`
	WrittenAt time.Time     `json:"written_at"`
	Uncounted int           `json:"uncounted,omitempty"`
	Counts    []countsEntry `json:"counts"`
}

type countsEntry struct {
	State activity.State `json:"state"`
	Queue string         `json:"queue"`
	DagID string         `json:"dag_id,omitempty"`
	N     int            `json:"n"`
}

// markOpen puts id in the index of unfinished records (before or beside
// the write of its record unfinished). A failure does not fail the
// record's write: it marks the index incomplete, so that this executor
// saves no counts' snapshot and the next start reads every record.
func (s *store) markOpen(ctx context.Context, id string) {
	rev, err := s.open.Put(ctx, id, nil)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if !s.indexBroken {
			s.log.Warn("index of unfinished task instances: a put failed; the next start reads every record", "ti_id", id, "err", err)
		}
		s.indexBroken = true
		return
	}
	s.openRev[id] = rev
}

// unmarkOpen removes id from the index (after its record was written
// terminal). A failure leaves an entry that the next load drops.
func (s *store) unmarkOpen(ctx context.Context, id string) {
	s.mu.Lock()
	rev := s.openRev[id]
	delete(s.openRev, id)
	s.mu.Unlock()
	if rev == 0 {
		e, err := s.open.Get(ctx, id)
		if err != nil {
			if !errors.Is(err, queue.ErrKeyNotFound) && !errors.Is(err, queue.ErrKeyDeleted) {
				s.log.Debug("unindex finished task instance", "ti_id", id, "err", err)
			}
			return
		}
		rev = e.Revision()
	}
	if err := s.open.RemoveAt(ctx, id, rev); err != nil {
		s.log.Debug("unindex finished task instance", "ti_id", id, "err", err)
	}
}

// loadIndexed loads the cache from the counts' snapshot and the index
// when nothing was written since the snapshot; it returns the revision to
// follow the bucket from, or 0 when every record must be read instead.
func (s *store) loadIndexed(ctx context.Context) (uint64, error) {
	e, err := s.conf.Get(ctx, countsSnapshotKey)
	if errors.Is(err, queue.ErrKeyNotFound) {
		s.log.Info("no snapshot of the task-instance counts (a store from before the index, or never stopped cleanly): reading every record once")
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read counts snapshot: %w", err)
	}
	var snap countsSnapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		s.log.Warn("undecodable snapshot of the task-instance counts: reading every record", "err", err)
		return 0, nil
	}
	_, last, err := s.kv.Bounds(ctx)
	if err != nil {
		return 0, err
	}
	if last != snap.Revision {
		s.log.Info("task instances changed since the last clean stop: reading every record",
			"snapshot_revision", snap.Revision, "last_revision", last)
		return 0, nil
	}
	type entry struct {
		id  string
		rev uint64
	}
	var idx []entry
	if err := s.open.Scan(ctx, 0, 0, func(v queue.StoredValue) bool {
		idx = append(idx, entry{v.Key, v.Revision})
		return true
	}); err != nil {
		return 0, fmt.Errorf("read index of unfinished task instances: %w", err)
	}
	live := make(map[string]cachedRecord, len(idx))
	openRev := make(map[string]uint64, len(idx))
	for _, x := range idx {
		ent, err := s.kv.Get(ctx, x.id)
		if errors.Is(err, queue.ErrKeyNotFound) || errors.Is(err, queue.ErrKeyDeleted) {
			s.forgetStale(ctx, x.id, x.rev)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read unfinished task instance %s: %w", x.id, err)
		}
		if ent.Revision() > last {
			// Written since Bounds (another executor): the snapshot's
			// counts may miss it.
			s.log.Info("task instances changed while loading: reading every record", "ti_id", x.id)
			return 0, nil
		}
		s.decoded.Add(1)
		ti, err := activity.UnmarshalRecord(ent.Value())
		if err != nil {
			s.log.Warn("skip undecodable task instance", "ti_id", x.id, "err", err)
			continue
		}
		if ti.State.Terminal() {
			s.forgetStale(ctx, x.id, x.rev)
			continue
		}
		live[x.id] = cachedRecord{ti: ti, raw: ent.Value(), rev: ent.Revision()}
		openRev[x.id] = x.rev
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range live {
		s.live[id] = c
		s.openRev[id] = openRev[id]
		for _, fn := range s.listeners {
			fn(c.ti)
		}
	}
	for _, c := range snap.Counts {
		s.counts[countKey{state: c.State, queue: c.Queue, dagID: c.DagID}] = c.N
	}
	s.uncounted = snap.Uncounted
	s.watched = last
	s.loaded = true
	s.log.Info("task instances loaded from the index of unfinished records", "unfinished", len(live), "revision", last)
	return last + 1, nil
}

// forgetStale drops an index entry whose record is finished or gone.
func (s *store) forgetStale(ctx context.Context, id string, rev uint64) {
	if err := s.open.RemoveAt(ctx, id, rev); err != nil {
		s.log.Debug("drop stale index entry", "ti_id", id, "err", err)
	}
}

// reindex makes the index name exactly the unfinished records in memory,
// after a load that read every record: the migration of a store made
// before the index, and the repair after a crash.
func (s *store) reindex(ctx context.Context) error {
	have := map[string]uint64{}
	if err := s.open.Scan(ctx, 0, 0, func(v queue.StoredValue) bool {
		have[v.Key] = v.Revision
		return true
	}); err != nil {
		return err
	}
	s.mu.Lock()
	var missing []string
	for id := range s.live {
		if rev, ok := have[id]; ok {
			s.openRev[id] = rev
		} else {
			missing = append(missing, id)
		}
	}
	s.mu.Unlock()
	for _, id := range missing {
		s.markOpen(ctx, id)
	}
	s.mu.RLock()
	var stale []string
	for id := range have {
		if _, ok := s.live[id]; !ok {
			stale = append(stale, id)
		}
	}
	s.mu.RUnlock()
	for _, id := range stale {
		s.forgetStale(ctx, id, have[id])
	}
	if len(missing) > 0 || len(stale) > 0 {
		s.log.Info("index of unfinished task instances completed", "added", len(missing), "dropped", len(stale))
	}
	return nil
}

// saveCounts writes the counts' snapshot when the watch applied every
// change stored (call it once nothing of this executor writes records any
// more: Stop). It reports whether it wrote one.
func (s *store) saveCounts(ctx context.Context) (bool, error) {
	_, last, err := s.kv.Bounds(ctx)
	if err != nil {
		return false, err
	}
	s.mu.RLock()
	snap := countsSnapshot{Revision: s.watched, WrittenAt: time.Now().UTC(), Uncounted: s.uncounted}
	ok := s.loaded && s.watched == last && len(s.purged) == 0 && !s.indexBroken
	if ok {
		snap.Counts = make([]countsEntry, 0, len(s.counts))
		for k, n := range s.counts {
			snap.Counts = append(snap.Counts, countsEntry{State: k.state, Queue: k.queue, DagID: k.dagID, N: n})
		}
	}
	s.mu.RUnlock()
	if !ok {
		s.log.Info("no snapshot of the task-instance counts (the watch behind the bucket, or the index incomplete): the next start reads every record",
			"watched", snap.Revision, "last_revision", last)
		return false, nil
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return false, err
	}
	if len(b) > countsSnapshotMax {
		s.log.Warn("snapshot of the task-instance counts too large: the next start reads every record", "bytes", len(b))
		return false, nil
	}
	if _, err := s.conf.Put(ctx, countsSnapshotKey, b); err != nil {
		return false, fmt.Errorf("write counts snapshot: %w", err)
	}
	return true, nil
}

// settle waits until the watch has applied every change stored, or ctx
// ends.
func (s *store) settle(ctx context.Context) {
	for {
		_, last, err := s.kv.Bounds(ctx)
		if err != nil {
			return
		}
		s.mu.RLock()
		caught := s.watched >= last
		s.mu.RUnlock()
		if caught {
			return
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// LoadedRecords is how many task-instance records Start decoded from
// storage to load the record cache: the unfinished ones after a clean
// stop, every record otherwise (see the index of unfinished records).
func (e *Executor) LoadedRecords() int64 { return e.store.decoded.Load() }
