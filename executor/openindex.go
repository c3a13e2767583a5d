package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// The start without reading every finished record.
//
// A clean stop writes a snapshot (countsSnapshot, in the config bucket) of
// the counts (records per state, queue and DAG) and of the ids of the
// unfinished records, with the task_instances bucket's last revision, once
// the record cache's watch has applied every change up to it. The ids go
// in chunks of at most openChunkBytes (config keys openChunkKey(i), each
// stamped with the snapshot's revision), written before the snapshot that
// names how many there are. A start that finds the bucket's last revision
// still equal to the snapshot's (nothing written since) takes the counts
// from the snapshot and reads only the records the chunks name
// (loadIndexed): its time and memory follow the unfinished records, not
// the finished ones. Otherwise (no snapshot: a store of an older version,
// a crash, another executor's writes since, a chunk of another revision)
// it reads every record, as a first start does; the next clean stop writes
// the snapshot. Nothing is written per task for it: the snapshot is made
// from the cache, which holds every unfinished record.

// countsSnapshotKey is the config bucket's key of the counts' snapshot.
const countsSnapshotKey = "task_instance_counts"

// openChunkKey is the config bucket's key of the snapshot's i-th chunk of
// unfinished record ids.
func openChunkKey(i int) string { return "task_instance_open." + strconv.Itoa(i) }

// Bounds of the snapshot (the config bucket's values are NATS messages):
// with more kinds of records, or more unfinished ids, than fit, no
// snapshot is written and the next start reads every record.
const (
	countsSnapshotMax = 512 << 10
	openChunkBytes    = 256 << 10
	openSnapshotMax   = 64 << 20
)

// countsSnapshot is the counts of records at Revision of the
// task_instances bucket, and how many chunks list the unfinished ones.
type countsSnapshot struct {
	Revision   uint64        `json:"revision"`
	WrittenAt  time.Time     `json:"written_at"`
	Uncounted  int           `json:"uncounted,omitempty"`
	Counts     []countsEntry `json:"counts"`
	OpenChunks int           `json:"open_chunks"`
}

type countsEntry struct {
	State activity.State `json:"state"`
	Queue string         `json:"queue"`
	DagID string         `json:"dag_id,omitempty"`
	N     int            `json:"n"`
}

// openChunk is a chunk of the unfinished records' ids of the snapshot at
// Revision.
type openChunk struct {
	Revision uint64   `json:"revision"`
	IDs      []string `json:"ids"`
}

// loadIndexed loads the cache from the counts' snapshot and the records it
// names unfinished when nothing was written since the snapshot; it
// returns the revision to follow the bucket from, or 0 when every record
// must be read instead.
func (s *store) loadIndexed(ctx context.Context) (uint64, error) {
	e, err := s.conf.Get(ctx, countsSnapshotKey)
	if errors.Is(err, queue.ErrKeyNotFound) {
		s.log.Info("no snapshot of the task instances (a store of an older version, or never stopped cleanly): reading every record once")
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read counts snapshot: %w", err)
	}
	var snap countsSnapshot
	if err := json.Unmarshal(e.Value(), &snap); err != nil {
		s.log.Warn("undecodable snapshot of the task instances: reading every record", "err", err)
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
	var ids []string
	for i := range snap.OpenChunks {
		ce, err := s.conf.Get(ctx, openChunkKey(i))
		if err != nil && !errors.Is(err, queue.ErrKeyNotFound) {
			return 0, fmt.Errorf("read snapshot chunk %d: %w", i, err)
		}
		var c openChunk
		if err != nil || json.Unmarshal(ce.Value(), &c) != nil || c.Revision != snap.Revision {
			s.log.Warn("snapshot of the task instances incomplete: reading every record", "chunk", i)
			return 0, nil
		}
		ids = append(ids, c.IDs...)
	}
	live := make(map[string]cachedRecord, len(ids))
	for _, id := range ids {
		ent, err := s.kv.Get(ctx, id)
		if errors.Is(err, queue.ErrKeyNotFound) || errors.Is(err, queue.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read unfinished task instance %s: %w", id, err)
		}
		if ent.Revision() > last {
			// Written since Bounds (another executor): the snapshot's
			// counts may miss it.
			s.log.Info("task instances changed while loading: reading every record", "ti_id", id)
			return 0, nil
		}
		s.decoded.Add(1)
		ti, err := activity.UnmarshalRecord(ent.Value())
		if err != nil {
			s.log.Warn("skip undecodable task instance", "ti_id", id, "err", err)
			continue
		}
		if ti.State.Terminal() {
			continue
		}
		live[id] = cachedRecord{ti: ti, raw: ent.Value(), rev: ent.Revision()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range live {
		s.live[id] = c
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
	s.log.Info("task instances loaded from the snapshot of the last clean stop", "unfinished", len(live), "revision", last)
	return last + 1, nil
}

// saveCounts writes the snapshot when the watch applied every change
// stored (call it once nothing of this executor writes records any more:
// Stop). It reports whether it wrote one.
func (s *store) saveCounts(ctx context.Context) (bool, error) {
	_, last, err := s.kv.Bounds(ctx)
	if err != nil {
		return false, err
	}
	s.mu.RLock()
	snap := countsSnapshot{Revision: s.watched, WrittenAt: time.Now().UTC(), Uncounted: s.uncounted}
	ok := s.loaded && s.watched == last && len(s.purged) == 0
	var chunks []openChunk
	size := 0
	if ok {
		snap.Counts = make([]countsEntry, 0, len(s.counts))
		for k, n := range s.counts {
			snap.Counts = append(snap.Counts, countsEntry{State: k.state, Queue: k.queue, DagID: k.dagID, N: n})
		}
		chunkBytes := 0
		for id := range s.live {
			if len(chunks) == 0 || chunkBytes+len(id)+3 > s.chunkBytes {
				chunks = append(chunks, openChunk{Revision: snap.Revision})
				chunkBytes = 64
			}
			c := &chunks[len(chunks)-1]
			c.IDs = append(c.IDs, id)
			chunkBytes += len(id) + 3
			size += len(id) + 3
		}
	}
	s.mu.RUnlock()
	if !ok {
		s.log.Info("no snapshot of the task instances (the watch behind the bucket): the next start reads every record",
			"watched", snap.Revision, "last_revision", last)
		return false, nil
	}
	if size > openSnapshotMax {
		s.log.Warn("too many unfinished task instances for a snapshot: the next start reads every record", "bytes", size)
		return false, nil
	}
	snap.OpenChunks = len(chunks)
	b, err := json.Marshal(snap)
	if err != nil {
		return false, err
	}
	if len(b) > countsSnapshotMax {
		s.log.Warn("snapshot of the task-instance counts too large: the next start reads every record", "bytes", len(b))
		return false, nil
	}
	for i, c := range chunks {
		cb, err := json.Marshal(c)
		if err != nil {
			return false, err
		}
		if _, err := s.conf.Put(ctx, openChunkKey(i), cb); err != nil {
			return false, fmt.Errorf("write snapshot chunk %d: %w", i, err)
		}
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
