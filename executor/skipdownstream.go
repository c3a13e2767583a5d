package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// maxSkipTasks bounds the task ids of one skip-downstream request.
const maxSkipTasks = 10000

// checkSkipDownstream checks a …/skip-downstream body.
func checkSkipDownstream(req *execution.SkipDownstreamRequest) error {
	if len(req.Tasks) > maxSkipTasks {
		return badRequest("tasks: %d task ids, at most %d", len(req.Tasks), maxSkipTasks)
	}
	for i, st := range req.Tasks {
		if st.TaskID == "" {
			return badRequest("tasks[%d]: empty task id", i)
		}
		if st.MapIndex < -1 {
			return badRequest("tasks[%d]: map_index %d: want -1 (the whole task) or more", i, st.MapIndex)
		}
	}
	return nil
}

// handleSkipDownstream is PATCH task-instances/{id}/skip-downstream,
// Airflow's SkipDownstreamTasks: a running task of a DAG run (a
// short-circuit or branch operator) skips tasks downstream of it that are
// not decided yet. The run record changes by compare-and-set before the
// task ends, so the run's next evaluation (at the task's end) finds them
// skipped and applies their downstream's trigger rules.
func (e *Executor) handleSkipDownstream(w http.ResponseWriter, r *http.Request) {
	id, c, req, ok := execRequest(e, w, r, checkSkipDownstream)
	if !ok {
		return
	}
	ti, err := e.store.get(r.Context(), id)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	switch {
	case ti.TryNumber != c.Try:
		e.writeError(w, r, fmt.Errorf("%w: token is for try %d, task instance is at try %d", ErrConflict, c.Try, ti.TryNumber))
		return
	case ti.State != activity.StateRunning:
		e.writeError(w, r, fmt.Errorf("%w: task instance is %s, not running", ErrConflict, ti.State))
		return
	case ti.DagRun == nil:
		e.writeError(w, r, fmt.Errorf("%w: task instance is not part of a DAG run: it has no downstream tasks", ErrConflict))
		return
	}
	if len(req.Tasks) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	refs := make([]dag.Ref, len(req.Tasks))
	for i, st := range req.Tasks {
		refs[i] = dag.Ref{TaskID: st.TaskID, MapIndex: st.MapIndex}
	}
	skipped, err := e.skipInRun(r.Context(), ti, refs, "skipped by "+ti.TaskID)
	if errors.Is(err, dag.ErrNotFound) {
		err = badRequest("tasks: %v", err)
	}
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Debug("downstream tasks skipped", "ti_id", id, "tasks", req.Tasks, "instances", skipped)
	w.WriteHeader(http.StatusNoContent)
}

// skipInRun skips the undecided instances refs names, downstream of task
// instance ti, in ti's DAG run record by compare-and-set
// ([dag.Run.SkipDownstreamBecause]); a ref that is not downstream of ti
// is dag.ErrNotFound. It returns how many instances it skipped.
func (e *Executor) skipInRun(ctx context.Context, ti *activity.TaskInstance, refs []dag.Ref, reason string) (int, error) {
	ds, err := e.dagStore()
	if err != nil {
		return 0, err
	}
	skipped := 0
	_, err = ds.store.Runs().Mutate(ctx, queue.DagRunKey(ti.DagID, ti.DagRun.RunID), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("run %s of dag %s: %w", ti.DagRun.RunID, ti.DagID, ErrNotFound)
		}
		run, err := dag.UnmarshalRun(old)
		if err != nil {
			return nil, err
		}
		d, err := e.dagVersion(ctx, run.DagID, run.DagVersion)
		if err != nil {
			return nil, err
		}
		if skipped, err = run.SkipDownstreamBecause(d, ti.TaskID, refs, reason, e.now()); err != nil {
			return nil, err
		}
		if skipped == 0 {
			return nil, errNothingSkipped // decided already: no write
		}
		return run.Marshal()
	})
	if errors.Is(err, errNothingSkipped) {
		err = nil
	}
	return skipped, err
}

// errNothingSkipped aborts skipInRun's compare-and-set when nothing changed.
var errNothingSkipped = errors.New("nothing to skip")

// Airflow's SkipMixin XCom (airflow.sdk.bases.skipmixin): a branch or
// short-circuit operator (@task.branch, BranchPythonOperator,
// ShortCircuitOperator, skip()) pushes {"followed": [task ids]} or
// {"skipped": [task ids]} under this key, and Airflow's scheduler reads it
// for each task instance directly downstream (NotPreviouslySkippedDep).
// The pinned task SDK sends SkipDownstreamTasks only from a task that is
// not mapped; a mapped one's instances leave only this XCom.
const (
	skipMixinKey      = "skipmixin_key"
	skipMixinFollowed = "followed"
	skipMixinSkipped  = "skipped"
)

// skipMixinRefs is Airflow's NotPreviouslySkippedDep for task `from` of d
// at mapIndex, whose skipmixin_key XCom is raw: the task instances
// directly downstream that it skips. A downstream task is skipped when
// the value has "followed" and does not name it, or else has "skipped"
// and names it. The instances are those that read this instance's XCom:
// of a mapped task's instance (mapIndex ≥ 0), the instance at the same
// map index of each mapped downstream task (a downstream task that is not
// mapped reads map index -1, where a mapped task pushes nothing: it is
// left to its trigger rule, as in Airflow); of a task that is not mapped,
// every instance of the downstream task. A value that is not an object
// whose "followed" and "skipped" (when present) are lists of task ids is
// an error naming what is wrong; other keys are ignored, as in Airflow.
func skipMixinRefs(d *dag.DAG, from string, mapIndex int, raw []byte) ([]dag.Ref, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("want an object with %q or %q task ids, got %s", skipMixinFollowed, skipMixinSkipped, truncateValue(string(raw)))
	}
	ids := func(field string) (map[string]bool, bool, error) {
		v, ok := obj[field]
		if !ok {
			return nil, false, nil
		}
		var list []any
		if err := json.Unmarshal(v, &list); err != nil || list == nil {
			return nil, true, fmt.Errorf("%s: want a list of task ids, got %s", field, truncateValue(string(v)))
		}
		set := make(map[string]bool, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, true, fmt.Errorf("%s[%d]: want a task id (a string), got %s", field, i, truncateValue(fmt.Sprint(e)))
			}
			set[s] = true
		}
		return set, true, nil
	}
	followed, hasFollowed, err := ids(skipMixinFollowed)
	if err != nil {
		return nil, err
	}
	skipped, hasSkipped, err := ids(skipMixinSkipped)
	if err != nil {
		return nil, err
	}
	var refs []dag.Ref
	for _, t := range d.Tasks {
		if !slices.Contains(t.DependsOn, from) {
			continue
		}
		if !(hasFollowed && !followed[t.TaskID] || hasSkipped && skipped[t.TaskID]) {
			continue
		}
		switch {
		case mapIndex < 0:
			refs = append(refs, dag.Ref{TaskID: t.TaskID, MapIndex: -1})
		case t.Mapped():
			refs = append(refs, dag.Ref{TaskID: t.TaskID, MapIndex: mapIndex})
		}
	}
	return refs, nil
}

// hasDownstream reports whether a task of d depends on task id.
func hasDownstream(d *dag.DAG, id string) bool {
	for _, t := range d.Tasks {
		if slices.Contains(t.DependsOn, id) {
			return true
		}
	}
	return false
}

// applySkipMixin applies, as task instance ti of a DAG run succeeds, the
// skipmixin_key XCom it pushed, as Airflow's scheduler does: the
// instances directly downstream that skipMixinRefs names become skipped
// in the run record (compare-and-set), before ti's success is recorded,
// so the run's evaluation at that end finds them skipped and their own
// downstream follow their trigger rules, as after a SkipDownstreamTasks.
// A malformed value skips nothing: note says why (the caller puts it in
// the task instance's reason, the log has it too) and the run goes on by
// its trigger rules; the XCom stays. err is a failure to read or write
// (the caller fails the request; retrying it is harmless).
//
// Only a task with a `task:` entrypoint (Airflow's runtime, an SDK's) is
// read for it, and only when it has a downstream task: a command task
// runs no SkipMixin operator, and the read (an XCom lookup) would cost
// every end of a DAG run's command tasks.
func (e *Executor) applySkipMixin(ctx context.Context, ti *activity.TaskInstance) (note string, err error) {
	if ti.DagRun == nil || e.dags == nil || ti.Entrypoint.Task == "" {
		return "", nil
	}
	d, err := e.dagVersion(ctx, ti.DagID, ti.DagRun.DagVersion)
	if errors.Is(err, ErrNotFound) {
		return "", nil // the DAG is gone: nothing downstream to decide
	}
	if err != nil || !hasDownstream(d, ti.TaskID) {
		return "", err
	}
	ent, err := e.xcom.Get(ctx, xcomKey(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex, skipMixinKey))
	if err != nil {
		if err = kvErr("xcom "+skipMixinKey, err); errors.Is(err, ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	name := ti.TaskID
	if ti.MapIndex >= 0 {
		name = fmt.Sprintf("%s[%d]", ti.TaskID, ti.MapIndex)
	}
	refs, err := skipMixinRefs(d, ti.TaskID, ti.MapIndex, ent.Value())
	if err != nil {
		note = fmt.Sprintf("its %s XCom was not applied, nothing downstream skipped by it: %v", skipMixinKey, err)
		e.log.Warn("dag run: malformed skipmixin_key xcom", "ti_id", ti.ID, "dag_id", ti.DagID, "run_id", ti.RunID, "task", name, "err", err)
		return note, nil
	}
	if len(refs) == 0 {
		return "", nil
	}
	n, err := e.skipInRun(ctx, ti, refs, fmt.Sprintf("skipped by %s (its %s XCom)", name, skipMixinKey))
	if errors.Is(err, ErrNotFound) {
		return "", nil // the run is gone
	}
	if err != nil {
		return "", fmt.Errorf("apply %s's %s xcom: %w", name, skipMixinKey, err)
	}
	e.log.Debug("downstream tasks skipped by skipmixin_key", "ti_id", ti.ID, "tasks", refs, "instances", n)
	return "", nil
}
