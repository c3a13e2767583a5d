package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// TriggerRequest is the body of POST /api/v1/dags/{dag_id}/runs.
type TriggerRequest = dag.TriggerRequest

// queueParallelism bounds the task instances one evaluation queues at once.
const queueParallelism = 32

// errNoRun aborts a mutation of a run record that does not exist.
var errNoRun = errors.New("no such run")

// TriggerRun creates a run of a DAG at its current version and queues its
// first task instances. A run_id that exists returns that run (created
// false). A paused or unknown DAG is refused.
func (e *Executor) TriggerRun(ctx context.Context, dagID string, req TriggerRequest) (*dag.Run, bool, error) {
	rec, err := e.GetDag(ctx, dagID)
	if err != nil {
		return nil, false, err
	}
	if rec.Paused {
		return nil, false, fmt.Errorf("%w: dag %s is paused: unpause it (executor dags unpause %s) to trigger runs", ErrConflict, dagID, dagID)
	}
	now := e.now()
	ld := now
	if req.LogicalDate != nil {
		ld = req.LogicalDate.UTC()
	}
	runID := req.RunID
	if runID == "" {
		runID = "manual__" + ld.Format(time.RFC3339Nano)
	}
	if err := activity.ValidateRunID(runID); err != nil {
		return nil, false, err
	}
	return e.createRun(ctx, rec, runID, dag.RunTypeManual, ld, req.Conf)
}

// createRun stores a new run of rec's DAG (or returns the existing one of
// that run_id) and queues what is ready.
func (e *Executor) createRun(ctx context.Context, rec *DagRecord, runID, runType string, ld time.Time, conf map[string]any) (*dag.Run, bool, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, false, err
	}
	key := queue.DagRunKey(rec.DagID, runID)
	if r, err := e.GetRun(ctx, rec.DagID, runID); err == nil {
		return r, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	d := rec.DAG
	now := e.now()
	r := dag.NewRun(d, rec.Version, runID, runType, ld, conf, now)
	var ev dag.Evaluation
	if d.MaxActiveRuns > 0 {
		// Stored queued; it runs once it holds one of the DAG's slots
		// (startRun), which two replicas cannot both take.
		r.State, r.StartDate = dag.RunQueued, nil
	}
	if r.State == dag.RunRunning {
		ev = r.Evaluate(d, e.expandSource(ctx, r), now)
	}
	b, err := r.Marshal()
	if err != nil {
		return nil, false, err
	}
	// The marker first: a run whose marker is missing would never be
	// looked at by the scan. A marker without a run is dropped by it.
	if !r.State.Finished() {
		if err := ds.store.Runs().Put(ctx, queue.ActiveRunKey(rec.DagID, runID), activeMarker(now)); err != nil {
			return nil, false, err
		}
	}
	if _, err := ds.store.Runs().Create(ctx, key, b); err != nil {
		if queue.IsConflict(err) {
			existing, gerr := e.GetRun(ctx, rec.DagID, runID)
			return existing, false, gerr
		}
		return nil, false, fmt.Errorf("create run %s of %s: %w", runID, rec.DagID, err)
	}
	e.log.Info("dag run created", "dag_id", rec.DagID, "run_id", runID, "run_type", runType, "state", r.State, "version", rec.Version)
	e.queueReady(ctx, d, r, ev.Ready)
	if ev.Ended {
		e.runFinished(ctx, d, r)
	}
	if r.State == dag.RunQueued && e.startRun(ctx, rec.DagID, runID) {
		if started, err := e.GetRun(ctx, rec.DagID, runID); err == nil {
			r = started
		}
	}
	return r, true, nil
}

// GetRun returns a run's record.
func (e *Executor) GetRun(ctx context.Context, dagID, runID string) (*dag.Run, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, err
	}
	if !dag.ValidDagID(dagID) {
		return nil, fmt.Errorf("dag %q: %w", dagID, ErrNotFound)
	}
	b, _, err := ds.store.Runs().Get(ctx, queue.DagRunKey(dagID, runID))
	if err != nil {
		return nil, notFoundRecord("run "+runID+" of dag "+dagID, err)
	}
	return dag.UnmarshalRun(b)
}

// ListRuns returns a DAG's runs, the latest logical date first.
func (e *Executor) ListRuns(ctx context.Context, dagID string) ([]*dag.Run, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, err
	}
	if !dag.ValidDagID(dagID) {
		return nil, fmt.Errorf("dag %q: %w", dagID, ErrNotFound)
	}
	keys, err := ds.store.Runs().Keys(ctx, "run."+dagID+".*")
	if err != nil {
		return nil, err
	}
	out := make([]*dag.Run, 0, len(keys))
	for _, k := range keys {
		b, _, err := ds.store.Runs().Get(ctx, k)
		if errors.Is(err, queue.ErrRecordNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r, err := dag.UnmarshalRun(b)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LogicalDate.Equal(out[j].LogicalDate) {
			return out[i].LogicalDate.After(out[j].LogicalDate)
		}
		return out[i].RunID > out[j].RunID
	})
	return out, nil
}

// runEnd is a task instance's end to apply to its run record.
type runEnd struct {
	taskID   string
	mapIndex int
	tiID     string
	state    activity.State
	try      int
	reason   string
}

// runBatch gathers the ends of one run's task instances: while one
// goroutine applies a batch (one compare-and-set of the run record), the
// ends that arrive meanwhile wait for the next, so a fan-in of many ends
// costs few writes and no conflicts within this executor.
type runBatch struct {
	pending []runEnd
	busy    bool
}

// dagTaskEnded is called when a task instance reached a final state: if
// it belongs to a DAG run, the end goes to the run's evaluator (runEnded),
// which records it and queues the downstream task instances that became
// ready.
func (e *Executor) dagTaskEnded(ctx context.Context, ti *activity.TaskInstance) {
	if ti.DagRun == nil || !ti.State.Terminal() || e.dags == nil || e.dags.dropEnds.Load() {
		return
	}
	e.runEnded(context.WithoutCancel(ctx), ti.DagID, ti.DagRun.RunID, runEnd{taskID: ti.TaskID, mapIndex: ti.MapIndex,
		tiID: ti.ID, state: ti.State, try: ti.TryNumber, reason: ti.Reason})
}

func (e *Executor) runEnded(ctx context.Context, dagID, runID string, end runEnd) {
	ds := e.dags
	key := queue.DagRunKey(dagID, runID)
	ds.mu.Lock()
	defer ds.mu.Unlock()
	b := ds.batches[key]
	if b == nil {
		b = &runBatch{}
		ds.batches[key] = b
	}
	b.pending = append(b.pending, end)
	if b.busy {
		return
	}
	// One goroutine per run applies the batches, so the call that recorded
	// the end (a worker's state report) does not wait for it: the end is
	// recorded already, and a crash before the run hears of it is repaired
	// by the scan.
	b.busy = true
	ds.wg.Add(1)
	go func() {
		defer ds.wg.Done()
		e.drainEnds(context.WithoutCancel(ctx), dagID, runID, key, b)
	}()
}

// drainEnds applies the batches of ends of one run until none is left.
func (e *Executor) drainEnds(ctx context.Context, dagID, runID, key string, b *runBatch) {
	ds := e.dags
	ds.mu.Lock()
	for {
		ends := b.pending
		b.pending = nil
		if len(ends) == 0 {
			b.busy = false
			delete(ds.batches, key)
			ds.mu.Unlock()
			return
		}
		ds.mu.Unlock()
		if err := e.applyEnds(ctx, dagID, runID, ends, false); err != nil {
			// The scan applies them again from the task-instance records.
			e.log.Error("dag run: record task ends", "dag_id", dagID, "run_id", runID, "ends", len(ends), "err", err)
		}
		ds.mu.Lock()
	}
}

// applyEnds brings the run up to date with its task instances' ends
// (ends, and every end the record cache knows of) and evaluates it. Ends
// alone are not written: the task-instance records hold them. Only when
// the evaluation decides something (a downstream scheduled, skipped or
// upstream_failed, a mapped task expanded, the run ended) is the run
// record written, by compare-and-set at the revision it was read at, so a
// fan-in of n upstreams costs the run record one write, not one per batch
// of ends. A replica that loses the compare-and-set re-reads the record
// and finds the downstream decided: each task instance is queued once.
//
// The cached copy belongs to the run's batch goroutine (drainEnds): every
// end this executor hears of, its own and (through the record watch)
// other replicas', passes through it, so the copy has them all applied
// and only a copy read afresh needs the record cache's ends applied.
//
// With persist (the scan), the ends are written even when nothing was
// decided, so the record does not lag its task instances long; the scan
// reads afresh and, when it writes, drops the batch goroutine's copy and
// keeps older copies from being cached again (they may lack the ends it
// applied), so the batch goroutine reads afresh next.
func (e *Executor) applyEnds(ctx context.Context, dagID, runID string, ends []runEnd, persist bool) error {
	ds := e.dags
	key := queue.DagRunKey(dagID, runID)
	c, cached := ds.takeRun(key)
	if persist {
		cached = false
	}
	for attempt := 0; ; attempt++ {
		if !cached {
			b, rev, err := ds.store.Runs().Get(ctx, key)
			if errors.Is(err, queue.ErrRecordNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			r, err := dag.UnmarshalRun(b)
			if err != nil {
				return err
			}
			c = cachedRun{run: r, rev: rev}
		}
		r := c.run
		if r.State.Finished() {
			return nil
		}
		applied, stale := 0, false
		for _, en := range ends {
			if !r.Knows(en.taskID, en.mapIndex, en.tiID) {
				stale = true // a clear elsewhere, or a stale end
				continue
			}
			if r.End(en.taskID, en.mapIndex, en.tiID, en.state, en.try, en.reason) {
				applied++
			}
		}
		if stale && cached {
			cached = false // maybe our copy is the stale one: read afresh
			continue
		}
		if !cached {
			applied += r.ApplyEnds(e.liveEnd)
		}
		d, err := e.dagVersion(ctx, r.DagID, r.DagVersion)
		if err != nil {
			return err
		}
		now := e.now()
		ev := r.Evaluate(d, e.expandSource(ctx, r), now)
		if !ev.Changed && persist && applied > 0 {
			r.UpdatedAt = now.UTC() // the ends written (see runEndsPersistAge)
		}
		if !ev.Changed && (!persist || applied == 0) {
			if !persist {
				ds.putRun(key, r, c.rev)
			}
			return nil
		}
		b, err := r.Marshal()
		if err != nil {
			return err
		}
		rev, err := ds.store.Runs().Update(ctx, key, b, c.rev)
		if err != nil {
			if queue.IsConflict(err) && attempt < runCASAttemptsMax {
				cached = false // another writer: decide again on its record
				continue
			}
			return err
		}
		if persist && !r.State.Finished() {
			ds.raiseFloor(key, rev)
		} else {
			ds.putRun(key, r, rev)
		}
		e.afterEvaluation(ctx, d, r, ev)
		return nil
	}
}

// runCASAttemptsMax bounds applyEnds' compare-and-set attempts.
const runCASAttemptsMax = 50

// liveEnd is the end of a task-instance record as the record cache (fed
// by every replica's writes) knows it.
func (e *Executor) liveEnd(tiID string) (activity.State, int, string, bool) {
	c, ok := e.store.cached(tiID)
	if !ok || !c.ti.State.Terminal() {
		return "", 0, "", false
	}
	return c.ti.State, c.ti.TryNumber, c.ti.Reason, true
}

// afterEvaluation queues what an evaluation made ready and ends the run
// if it ended.
func (e *Executor) afterEvaluation(ctx context.Context, d *dag.DAG, r *dag.Run, ev dag.Evaluation) {
	e.queueReady(ctx, d, r, ev.Ready)
	if ev.Ended {
		e.runFinished(ctx, d, r)
	}
}

// expandSource reads an upstream's XCom for a mapped task's expansion:
// for a mapped upstream, the list of its instances' values in map-index
// order (Airflow's pull of a mapped task).
func (e *Executor) expandSource(ctx context.Context, r *dag.Run) dag.ExpandSource {
	return func(taskID, key string) (any, error) {
		tr := r.Tasks[taskID]
		if tr != nil && tr.Expanded {
			return e.mappedXCom(ctx, r.DagID, r.RunID, taskID, key, tr)
		}
		v, err := e.xcomValue(ctx, r.DagID, r.RunID, taskID, -1, key)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%s pushed no xcom %s", taskID, key)
		}
		return v, err
	}
}

func (e *Executor) xcomValue(ctx context.Context, dagID, runID, taskID string, mapIndex int, key string) (any, error) {
	ent, err := e.xcom.Get(ctx, xcomKey(dagID, runID, taskID, mapIndex, key))
	if err != nil {
		return nil, kvErr("xcom "+key, err)
	}
	v, err := execution.DecodeValue(ent.Value())
	if err != nil {
		return nil, fmt.Errorf("decode xcom %s of %s: %w", key, taskID, err)
	}
	return v, nil
}

// mappedXComJSON answers a pull of a mapped task's XCom at map index -1
// (what a downstream pulls by default): the list of its instances'
// values in map-index order, as Airflow does. ok is false for a task that
// is not a mapped task of a DAG run.
func (e *Executor) mappedXComJSON(ctx context.Context, dagID, runID, taskID string, mapIndex int, key string) ([]byte, bool) {
	if mapIndex != -1 || e.dags == nil {
		return nil, false
	}
	r, err := e.GetRun(ctx, dagID, runID)
	if err != nil {
		return nil, false
	}
	tr := r.Tasks[taskID]
	if tr == nil || !tr.Expanded {
		return nil, false
	}
	list, err := e.mappedXCom(ctx, dagID, runID, taskID, key, tr)
	if err != nil {
		return nil, false
	}
	b, err := json.Marshal(list)
	return b, err == nil
}

// mappedXCom is the list of a mapped task's XCom key over its instances
// in map-index order, null where an instance pushed none.
func (e *Executor) mappedXCom(ctx context.Context, dagID, runID, taskID, key string, tr *dag.TaskRun) ([]any, error) {
	out := make([]any, len(tr.Instances))
	for i, in := range tr.Instances {
		v, err := e.xcomValue(ctx, dagID, runID, taskID, in.MapIndex, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// queueReady makes the task-instance record of every ready instance and
// publishes its activity. The record's id is the instance's (name-based)
// id in the run, so a repeat (the scan after a crash, another replica)
// finds it made and only publishes again, which JetStream de-duplicates
// and …/run fences.
func (e *Executor) queueReady(ctx context.Context, d *dag.DAG, r *dag.Run, ready []dag.Ref) {
	if len(ready) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var g errgroup.Group
	g.SetLimit(queueParallelism)
	for _, ref := range ready {
		g.Go(func() error {
			e.queueInstance(ctx, d, r, ref)
			return nil
		})
	}
	_ = g.Wait()
}

func (e *Executor) queueInstance(ctx context.Context, d *dag.DAG, r *dag.Run, ref dag.Ref) {
	t, in := d.Task(ref.TaskID), r.Instance(ref.TaskID, ref.MapIndex)
	if t == nil || in == nil || in.TIID == "" {
		return
	}
	now := e.now()
	spec := d.TaskSpec(t, r, in).WithDefaults(now)
	if err := spec.Validate(); err != nil {
		// Validation of the DAG makes this unreachable; say so loudly.
		e.log.Error("dag task spec invalid", "dag_id", r.DagID, "run_id", r.RunID, "task_id", t.TaskID, "err", err)
		return
	}
	ti := activity.NewTaskInstance(in.TIID, spec, now)
	if in.Try > 0 { // cleared: the next try
		ti.TryNumber = in.Try + 1
		ti.MaxTries = max(ti.MaxTries, ti.TryNumber)
		ti.Tries = []activity.Try{{TryNumber: ti.TryNumber, State: activity.StateQueued}}
	}
	ti.DagRun = r.RunContext()
	ti.NextActivityID()
	created := e.store.createAsync(ctx, ti)
	pubErr := e.publishExecute(ctx, ti)
	if err := <-created; err != nil {
		if !queue.IsConflict(errors.Unwrap(err)) && !queue.IsConflict(err) {
			e.log.Error("dag run: record task instance", "ti_id", ti.ID, "dag_id", r.DagID, "task_id", t.TaskID, "err", err)
		}
		// Made already (a repeat): its activity was published again under
		// the same id, which changes nothing.
		return
	}
	if pubErr != nil {
		e.log.Warn("dag run: publish activity; the scan will try again", "ti_id", ti.ID, "err", pubErr)
		e.unpublished.Store(ti.ID, unpublished{activityID: ti.ActivityID})
		return
	}
	e.metrics.onQueued(ti.Queue, "dag")
	e.log.Debug("dag task queued", "ti_id", ti.ID, "dag_id", r.DagID, "run_id", r.RunID, "task_id", t.TaskID, "map_index", ti.MapIndex)
}

// runFinished does what follows a run's end: its marker goes, its
// callback is queued, and the DAG's next queued run starts.
func (e *Executor) runFinished(ctx context.Context, d *dag.DAG, r *dag.Run) {
	ctx = context.WithoutCancel(ctx)
	e.log.Info("dag run ended", "dag_id", r.DagID, "run_id", r.RunID, "state", r.State)
	if err := e.dags.store.Runs().Delete(ctx, queue.ActiveRunKey(r.DagID, r.RunID), true); err != nil {
		e.log.Warn("dag run: drop active marker", "dag_id", r.DagID, "run_id", r.RunID, "err", err)
	}
	cb, on := d.OnSuccess, "on_success"
	if r.State == dag.RunFailed {
		cb, on = d.OnFailure, "on_failure"
	}
	e.queueRunCallback(ctx, d, r, on, cb)
	if d.MaxActiveRuns > 0 {
		if err := e.releaseRunSlot(ctx, r.DagID, r.RunID); err != nil {
			// The next start that finds the slots full takes it back.
			e.log.Warn("dag run: give back its max_active_runs slot", "dag_id", r.DagID, "run_id", r.RunID, "err", err)
		}
		e.startQueuedRuns(ctx, r.DagID)
	}
}

// queueRunCallback publishes a run's on_success/on_failure callback as a
// RunCallback activity about the run (its TI names the run and the task
// "__run__"), under an id unique to the run's end, so it runs once.
func (e *Executor) queueRunCallback(ctx context.Context, d *dag.DAG, r *dag.Run, on string, cb *activity.Callback) {
	if cb == nil {
		return
	}
	q := cb.Queue
	if q == "" {
		q = d.DefaultArgs.Queue
	}
	if q == "" && len(d.Tasks) > 0 {
		q = d.Tasks[0].Queue
	}
	id := dag.InstanceID(r.DagID, r.RunID, "__run__", -1, r.Clears) + "." + on
	ti := activity.TI{ID: dag.InstanceID(r.DagID, r.RunID, "__run__", -1, r.Clears), DagID: r.DagID, TaskID: "__run__",
		RunID: r.RunID, MapIndex: -1, TryNumber: 1}
	tok, err := e.tokens.issue(audWorkload, ti.ID, 1, id, e.cfg.WorkloadTokenTTL)
	if err == nil {
		st := activity.StateSuccess
		if r.State == dag.RunFailed {
			st = activity.StateFailed
		}
		a := activity.Activity{Kind: activity.KindRunCallback, RunCallback: &activity.RunCallback{
			ID: id, Token: tok, On: on, TI: ti, State: st, Reason: "dag run " + string(r.State),
			Queue: q, Entrypoint: cb.Entrypoint, QueuedAt: e.now(),
		}}
		var data []byte
		if data, err = a.Marshal(); err == nil {
			err = e.q.PublishActivity(ctx, q, id, data)
		}
	}
	if err != nil {
		e.log.Error("queue dag run callback", "dag_id", r.DagID, "run_id", r.RunID, "callback", on, "err", err)
		return
	}
	e.log.Debug("dag run callback queued", "dag_id", r.DagID, "run_id", r.RunID, "callback", on, "queue", q)
}

// startQueuedRuns starts the oldest queued runs of a DAG while its
// max_active_runs allows.
func (e *Executor) startQueuedRuns(ctx context.Context, dagID string) {
	runs, err := e.ListRuns(ctx, dagID)
	if err != nil {
		e.log.Warn("dag run: list queued runs", "dag_id", dagID, "err", err)
		return
	}
	for i := len(runs) - 1; i >= 0; i-- { // oldest first
		if runs[i].State == dag.RunQueued {
			if !e.startRun(ctx, dagID, runs[i].RunID) {
				return
			}
		}
	}
}

// startRun moves a queued run to running if the DAG's max_active_runs
// allows, and queues its first task instances. It reports whether it did.
func (e *Executor) startRun(ctx context.Context, dagID, runID string) bool {
	var (
		run *dag.Run
		d   *dag.DAG
		ev  dag.Evaluation
	)
	_, err := e.dags.store.Runs().Mutate(ctx, queue.DagRunKey(dagID, runID), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errNoRun
		}
		r, err := dag.UnmarshalRun(old)
		if err != nil {
			return nil, err
		}
		if r.State != dag.RunQueued {
			return nil, errUnchanged
		}
		if d, err = e.dagVersion(ctx, dagID, r.DagVersion); err != nil {
			return nil, err
		}
		if d.MaxActiveRuns > 0 {
			ok, err := e.takeRunSlot(ctx, dagID, r.RunID, d.MaxActiveRuns)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, errUnchanged
			}
		}
		ev = r.Evaluate(d, e.expandSource(ctx, r), e.now())
		run = r
		return r.Marshal()
	})
	if err != nil || run == nil {
		return false
	}
	e.queueReady(ctx, d, run, ev.Ready)
	if ev.Ended {
		e.runFinished(ctx, d, run)
	}
	return true
}

// ClearRun clears task instances of a run (all with no task ids; with
// downstream, every task downstream of them too): they run again as new
// tries, and the run is running again.
func (e *Executor) ClearRun(ctx context.Context, dagID, runID string, taskIDs []string, downstream bool) (*dag.Run, int, error) {
	ds, err := e.dagStore()
	if err != nil {
		return nil, 0, err
	}
	if !dag.ValidDagID(dagID) {
		return nil, 0, fmt.Errorf("dag %q: %w", dagID, ErrNotFound)
	}
	var (
		run     *dag.Run
		d       *dag.DAG
		ev      dag.Evaluation
		cleared int
	)
	_, err = ds.store.Runs().Mutate(ctx, queue.DagRunKey(dagID, runID), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("run %s of dag %s: %w", runID, dagID, ErrNotFound)
		}
		r, err := dag.UnmarshalRun(old)
		if err != nil {
			return nil, err
		}
		if d, err = e.dagVersion(ctx, dagID, r.DagVersion); err != nil {
			return nil, err
		}
		r.ApplyEnds(e.liveEnd)
		if cleared, err = r.Clear(d, taskIDs, downstream, e.now()); err != nil {
			if errors.Is(err, dag.ErrActive) {
				return nil, fmt.Errorf("%w: %w", ErrConflict, err)
			}
			if errors.Is(err, dag.ErrNotFound) {
				return nil, fmt.Errorf("%w: %w", errBadRequest, err)
			}
			return nil, err
		}
		run, ev = r, dag.Evaluation{}
		if d.MaxActiveRuns > 0 {
			ok, err := e.takeRunSlot(ctx, dagID, runID, d.MaxActiveRuns)
			if err != nil {
				return nil, err
			}
			if !ok { // it waits queued for a slot, as a new run would
				r.State, r.StartDate = dag.RunQueued, nil
				return r.Marshal()
			}
		}
		ev = r.Evaluate(d, e.expandSource(ctx, r), e.now())
		return r.Marshal()
	})
	if err != nil {
		return nil, 0, err
	}
	if err := ds.store.Runs().Put(ctx, queue.ActiveRunKey(dagID, runID), activeMarker(e.now())); err != nil {
		e.log.Warn("dag run: active marker", "dag_id", dagID, "run_id", runID, "err", err)
	}
	e.queueReady(ctx, d, run, ev.Ready)
	if ev.Ended {
		e.runFinished(ctx, d, run)
	}
	return run, cleared, nil
}

// validRunID reports whether s is a well-formed run_id
// (activity.ValidateRunID).
func validRunID(s string) bool { return activity.ValidateRunID(s) == nil }
