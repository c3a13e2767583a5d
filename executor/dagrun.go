package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/queue"
)

// dags is the executor's scheduler side: DAG records and their versions,
// DAG runs, and the evaluation that queues a run's ready task instances
// when one of its task instances ends (dagrun_run.go).
type dags struct {
	store *queue.DagStore

	mu sync.Mutex
	// versions caches DAG documents by "<dag_id>.<version>" (immutable).
	versions map[string]*dag.DAG
	// batches groups the ends of one run's task instances that arrive
	// while an evaluation of the run is under way (see runEnded).
	batches map[string]*runBatch
	// runs caches, by run key, the decoded record of each run this
	// executor applied ends to, at its revision: the next batch updates it
	// at that revision without reading and decoding it again (a replica
	// that wrote meanwhile makes the update fail, and the batch re-reads).
	runs map[string]cachedRun
	// floors holds, by run key, the revision the scan last wrote a run at:
	// a copy of an older revision is not cached again (it may lack the
	// ends the scan applied).
	floors map[string]uint64
	// wg counts the goroutines applying ends (runEnded); Stop waits for them.
	wg sync.WaitGroup

	// dropEnds, set by tests, makes this executor forget task ends before
	// its runs hear of them: what a crash right after the end was
	// recorded leaves behind.
	dropEnds atomic.Bool
}

// DagRecord is a DAG as stored (dag.Record).
type DagRecord = dag.Record

// startDags provisions the DAG buckets.
func (e *Executor) startDags(ctx context.Context) error {
	st, err := e.q.DagStore(ctx)
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	e.dags = &dags{store: st, versions: map[string]*dag.DAG{}, batches: map[string]*runBatch{}, runs: map[string]cachedRun{},
		floors: map[string]uint64{}}
	// Another replica's task end: this executor evaluates the run too, so
	// that two ends evaluated at once by two replicas, each before seeing
	// the other's, still decide their downstream (the run record's
	// compare-and-set makes the decision count once).
	e.store.onEnded = func(ti *activity.TaskInstance) { e.dagTaskEnded(context.Background(), ti) }
	return nil
}

// errDagStoreDown is returned by DAG operations of an executor not started.
var errDagStoreDown = errors.New("executor: dag store not started")

func (e *Executor) dagStore() (*dags, error) {
	if e.dags == nil {
		return nil, errDagStoreDown
	}
	return e.dags, nil
}

func notFoundRecord(what string, err error) error {
	if errors.Is(err, queue.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// PutDag stores a DAG document (YAML or JSON) as dagID's new version. A
// document equal to the current version changes nothing (created and
// changed false). An invalid document gives a *dag.ValidationError and
// changes nothing.
func (e *Executor) PutDag(ctx context.Context, dagID string, doc []byte) (rec *DagRecord, changed bool, err error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, false, err
	}
	d, err := dag.Parse(doc)
	if err != nil {
		return nil, false, err
	}
	if d.DagID != dagID {
		return nil, false, &dag.ValidationError{Problems: []dag.Problem{{Field: "dag_id",
			Message: fmt.Sprintf("dag_id %q differs from %q in the path", d.DagID, dagID)}}}
	}
	canon, err := json.Marshal(d)
	if err != nil {
		return nil, false, fmt.Errorf("encode dag %s: %w", dagID, err)
	}
	now := e.now()
	_, err = ds.store.Dags().Mutate(ctx, queue.DagKey(dagID), func(old []byte) ([]byte, error) {
		changed = false
		r := &DagRecord{DagID: dagID, CreatedAt: now}
		if old != nil {
			var prev DagRecord
			if err := json.Unmarshal(old, &prev); err != nil {
				return nil, fmt.Errorf("decode dag %s: %w", dagID, err)
			}
			if prevCanon, _ := json.Marshal(prev.DAG); string(prevCanon) == string(canon) {
				rec = &prev
				return nil, errUnchanged
			}
			// The version being replaced is kept for the runs pinned to it.
			pv, _ := json.Marshal(prev.DAG)
			if err := ds.store.Dags().Put(ctx, queue.DagVersionKey(dagID, prev.Version), pv); err != nil {
				return nil, err
			}
			*r = prev
		}
		r.Version++
		r.DAG, r.UpdatedAt = d, now
		r.NextRunAt = nil // the schedule is planned anew (dagschedule.go)
		changed = true
		rec = r
		return json.Marshal(r)
	})
	if errors.Is(err, errUnchanged) {
		return rec, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("put dag %s: %w", dagID, err)
	}
	e.log.Info("dag stored", "dag_id", dagID, "version", rec.Version, "tasks", len(d.Tasks))
	e.planSchedule(ctx, rec)
	return rec, true, nil
}

// GetDag returns a DAG's record.
func (e *Executor) GetDag(ctx context.Context, dagID string) (*DagRecord, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, err
	}
	if !dag.ValidDagID(dagID) {
		return nil, fmt.Errorf("dag %q: %w", dagID, ErrNotFound)
	}
	b, _, err := ds.store.Dags().Get(ctx, queue.DagKey(dagID))
	if err != nil {
		return nil, notFoundRecord("dag "+dagID, err)
	}
	var r DagRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode dag %s: %w", dagID, err)
	}
	return &r, nil
}

// ListDags returns every DAG's record, by dag_id.
func (e *Executor) ListDags(ctx context.Context) ([]*DagRecord, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, err
	}
	keys, err := ds.store.Dags().Keys(ctx, "dag.*")
	if err != nil {
		return nil, err
	}
	out := make([]*DagRecord, 0, len(keys))
	for _, k := range keys {
		r, err := e.GetDag(ctx, strings.TrimPrefix(k, "dag."))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DagID < out[j].DagID })
	return out, nil
}

// SetDagPaused pauses or unpauses a DAG. A paused DAG's schedule creates
// no runs and triggering it is refused; its runs under way go on.
func (e *Executor) SetDagPaused(ctx context.Context, dagID string, paused bool) (*DagRecord, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, err
	}
	if !dag.ValidDagID(dagID) {
		return nil, fmt.Errorf("dag %q: %w", dagID, ErrNotFound)
	}
	var rec *DagRecord
	_, err = ds.store.Dags().Mutate(ctx, queue.DagKey(dagID), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("dag %s: %w", dagID, ErrNotFound)
		}
		var r DagRecord
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, fmt.Errorf("decode dag %s: %w", dagID, err)
		}
		rec = &r
		if r.Paused == paused {
			return nil, errUnchanged
		}
		r.Paused, r.UpdatedAt = paused, e.now()
		if !paused {
			r.NextRunAt = nil // planned anew from now
		}
		return json.Marshal(&r)
	})
	if errors.Is(err, errUnchanged) {
		return rec, nil
	}
	if err != nil {
		return nil, err
	}
	if !paused {
		e.planSchedule(ctx, rec)
	}
	return rec, nil
}

// DeleteDag deletes a DAG, its versions and its runs' records. Task
// instances still running finish, but their runs are gone.
func (e *Executor) DeleteDag(ctx context.Context, dagID string) error {
	ds, err := e.dagStore()
	if err != nil {
		return err
	}
	if _, err := e.GetDag(ctx, dagID); err != nil {
		return err
	}
	if err := ds.store.Dags().Delete(ctx, queue.DagKey(dagID), true); err != nil {
		return err
	}
	if err := ds.store.Runs().Delete(ctx, queue.DagSlotsKey(dagID), true); err != nil {
		return err
	}
	for _, f := range []struct {
		rs     *queue.Records
		filter string
	}{{ds.store.Dags(), "ver." + dagID + ".*"}, {ds.store.Runs(), "run." + dagID + ".*"}, {ds.store.Runs(), "active." + dagID + ".*"}} {
		keys, err := f.rs.Keys(ctx, f.filter)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := f.rs.Delete(ctx, k, true); err != nil {
				return err
			}
		}
	}
	ds.mu.Lock()
	for k := range ds.versions {
		if strings.HasPrefix(k, dagID+".") {
			delete(ds.versions, k)
		}
	}
	ds.mu.Unlock()
	e.log.Info("dag deleted", "dag_id", dagID)
	return nil
}

// dagVersion returns version v of a DAG's document (the one a run pinned).
func (e *Executor) dagVersion(ctx context.Context, dagID string, v int) (*dag.DAG, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, err
	}
	ck := fmt.Sprintf("%s.%d", dagID, v)
	ds.mu.Lock()
	d := ds.versions[ck]
	ds.mu.Unlock()
	if d != nil {
		return d, nil
	}
	b, _, err := ds.store.Dags().Get(ctx, queue.DagVersionKey(dagID, v))
	if errors.Is(err, queue.ErrRecordNotFound) {
		rec, rerr := e.GetDag(ctx, dagID)
		if rerr != nil {
			return nil, rerr
		}
		if rec.Version != v {
			return nil, fmt.Errorf("dag %s version %d: %w", dagID, v, ErrNotFound)
		}
		d = rec.DAG
	} else if err != nil {
		return nil, err
	} else if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode dag %s version %d: %w", dagID, v, err)
	}
	ds.mu.Lock()
	ds.versions[ck] = d
	ds.mu.Unlock()
	return d, nil
}

// cachedRun is a decoded run record at its KV revision.
type cachedRun struct {
	run *dag.Run
	rev uint64
}

// takeRun removes and returns the cached record of a run: its user owns
// it (and puts it back with putRun once written).
func (ds *dags) takeRun(key string) (cachedRun, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	c, ok := ds.runs[key]
	delete(ds.runs, key)
	return c, ok
}

func (ds *dags) putRun(key string, r *dag.Run, rev uint64) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if r.State.Finished() {
		delete(ds.runs, key)
		delete(ds.floors, key)
		return
	}
	if rev < ds.floors[key] {
		return
	}
	ds.runs[key] = cachedRun{run: r, rev: rev}
}

// putRunIfAbsent gives back a copy the scan borrowed (scanRead), unless
// the evaluator cached one meanwhile (made since, it is as new).
func (ds *dags) putRunIfAbsent(key string, r *dag.Run, rev uint64) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if _, ok := ds.runs[key]; ok || r.State.Finished() || rev < ds.floors[key] {
		return
	}
	ds.runs[key] = cachedRun{run: r, rev: rev}
}

// raiseFloor drops the cached copy of a run and keeps copies older than
// rev from being cached again.
func (ds *dags) raiseFloor(key string, rev uint64) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.runs, key)
	if r, done := ds.floors[key]; !done || rev > r {
		ds.floors[key] = rev
	}
}

// stopDags waits for the evaluations under way.
func (e *Executor) stopDags() {
	if e.dags != nil {
		e.dags.wg.Wait()
	}
}
