package executor

import (
	"context"
	"errors"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/queue"
)

// orphanMarkerAge: an active-run marker with no run this old is dropped
// (younger, its run may be being created).
const orphanMarkerAge = time.Minute

// runEndsPersistAge: the scan writes the ends a run record lacks (ends
// that decided nothing) once the record is this old.
const runEndsPersistAge = 30 * time.Second

func activeMarker(now time.Time) []byte { return []byte(now.UTC().Format(time.RFC3339Nano)) }

// scanRuns finishes, for every run not ended, what a crash (or a lost
// NATS write) left half done; it runs at start and with every scan. Event
// by event the run record is kept in step with its task instances as they
// end (dagTaskEnded); this only repairs: a scheduled instance whose
// task-instance record was never made is queued, and one whose record
// ended without the run hearing of it is applied — both idempotent, so a
// replica doing the same at the same time changes nothing twice.
func (e *Executor) scanRuns(ctx context.Context) {
	if e.dags == nil || e.dags.dropEnds.Load() {
		return
	}
	runs := e.dags.store.Runs()
	keys, err := runs.Keys(ctx, "active.>")
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("dag runs scan: list active runs", "err", err)
		}
		return
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			return
		}
		dagID, runID, ok := queue.ParseRunKey(k)
		if !ok {
			continue
		}
		r, rev, cached, err := e.scanRead(ctx, dagID, runID)
		switch {
		case errors.Is(err, ErrNotFound):
			e.dropOrphanMarker(ctx, k)
			continue
		case err != nil:
			e.log.Warn("dag runs scan: read run", "dag_id", dagID, "run_id", runID, "err", err)
			continue
		case r.State.Finished():
			_ = runs.Delete(ctx, k, true)
			continue
		case r.State == dag.RunQueued:
			e.startRun(ctx, dagID, runID)
			continue
		}
		if e.repairRun(ctx, r) && cached {
			e.dags.putRunIfAbsent(queue.DagRunKey(dagID, runID), r, rev)
		}
	}
}

// scanRead reads a run for the scan. When the run's evaluator holds a
// copy at the record's revision, the scan borrows it (cached true; the
// evaluator reads afresh meanwhile) instead of decoding the record: a
// decode of a 1,000-instance run every scan was, under load, most of
// what the DAG path cost beside the flat tasks.
func (e *Executor) scanRead(ctx context.Context, dagID, runID string) (*dag.Run, uint64, bool, error) {
	key := queue.DagRunKey(dagID, runID)
	b, rev, err := e.dags.store.Runs().Get(ctx, key)
	if err != nil {
		return nil, 0, false, notFoundRecord("run "+runID+" of dag "+dagID, err)
	}
	if c, ok := e.dags.takeRun(key); ok && c.rev == rev {
		return c.run, rev, true, nil
	}
	r, err := dag.UnmarshalRun(b)
	return r, rev, false, err
}

func (e *Executor) dropOrphanMarker(ctx context.Context, key string) {
	b, _, err := e.dags.store.Runs().Get(ctx, key)
	if err != nil {
		return
	}
	at, err := time.Parse(time.RFC3339Nano, string(b))
	if err == nil && e.now().Sub(at) < orphanMarkerAge {
		return
	}
	_ = e.dags.store.Runs().Delete(ctx, key, true)
}

// repairRun queues the scheduled instances of r that have no record yet
// and writes the ends r's record does not have yet, evaluating it. It
// reports whether r is still a copy of the record at the revision it was
// read at, with only ends applied (nothing queued, decided or written).
func (e *Executor) repairRun(ctx context.Context, r *dag.Run) bool {
	var missing []dag.Ref
	var ends []runEnd
	for taskID, tr := range r.Tasks {
		for _, in := range tr.Instances {
			if in.State != dag.StateScheduled || in.TIID == "" {
				continue
			}
			ti, err := e.store.identityOrGet(ctx, in.TIID)
			switch {
			case errors.Is(err, ErrNotFound):
				missing = append(missing, dag.Ref{TaskID: taskID, MapIndex: in.MapIndex})
			case err != nil:
				e.log.Warn("dag runs scan: read task instance", "ti_id", in.TIID, "err", err)
			case ti.State.Terminal():
				ends = append(ends, runEnd{taskID: taskID, mapIndex: in.MapIndex, tiID: ti.ID,
					state: ti.State, try: ti.TryNumber, reason: ti.Reason})
			}
		}
	}
	if len(missing) > 0 {
		d, err := e.dagVersion(ctx, r.DagID, r.DagVersion)
		if err != nil {
			e.log.Warn("dag runs scan: dag version", "dag_id", r.DagID, "version", r.DagVersion, "err", err)
		} else {
			e.log.Info("dag runs scan: queueing task instances a crash left unqueued", "dag_id", r.DagID, "run_id", r.RunID, "count", len(missing))
			e.queueReady(ctx, d, r, missing)
		}
	}
	intact := len(missing) == 0
	if len(ends) > 0 {
		// Ends are written to the run record with its next decision; what
		// they decide, which a crash between an end and its evaluation left
		// undecided, is done here. Ends that decide nothing are written
		// too, but only once the record is runEndsPersistAge old: each such
		// write re-encodes the record and makes the run's evaluator read
		// and decode it afresh, which, every scan, cost a fan-out of 1,000
		// tasks more than its evaluations.
		// The scan decides on its own copy first (the evaluator's cached
		// copy is its goroutine's) and writes only when that decides
		// something or the ends are due.
		if e.now().Sub(r.UpdatedAt) < runEndsPersistAge && !e.endsDecide(ctx, r, ends) {
			return intact
		}
		if err := e.applyEnds(ctx, r.DagID, r.RunID, ends, true); err != nil && ctx.Err() == nil {
			e.log.Warn("dag runs scan: apply task ends", "dag_id", r.DagID, "run_id", r.RunID, "count", len(ends), "err", err)
		}
		return false
	}
	return intact
}

// endsDecide applies ends (and every end the record cache knows of) to
// r, the scan's copy of a run, and reports whether its evaluation decides
// anything.
func (e *Executor) endsDecide(ctx context.Context, r *dag.Run, ends []runEnd) bool {
	for _, en := range ends {
		r.End(en.taskID, en.mapIndex, en.tiID, en.state, en.try, en.reason)
	}
	r.ApplyEnds(e.liveEnd)
	d, err := e.dagVersion(ctx, r.DagID, r.DagVersion)
	if err != nil {
		return true // applyEnds reports it
	}
	return r.Evaluate(d, e.expandSource(ctx, r), e.now()).Changed
}

// instanceState is the live state of a run's instance: its task-instance
// record's while it is scheduled, else the run record's.
func (e *Executor) instanceState(in dag.Instance) (activity.State, *activity.TaskInstance) {
	var ti *activity.TaskInstance
	if in.TIID != "" {
		if c, ok := e.store.cached(in.TIID); ok {
			ti = c.ti
		}
	}
	if in.State == dag.StateScheduled && ti != nil {
		return ti.State, ti
	}
	return in.State, ti
}

// identityOrGet is the cached record of id, or KV's when it is not cached
// (made by another replica moments ago).
func (s *store) identityOrGet(ctx context.Context, id string) (*activity.TaskInstance, error) {
	if c, ok := s.cached(id); ok {
		return c.ti, nil
	}
	return s.get(ctx, id)
}
