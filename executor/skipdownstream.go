package executor

import (
	"errors"
	"fmt"
	"net/http"

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
	ds, err := e.dagStore()
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	refs := make([]dag.Ref, len(req.Tasks))
	for i, st := range req.Tasks {
		refs[i] = dag.Ref{TaskID: st.TaskID, MapIndex: st.MapIndex}
	}
	skipped := 0
	_, err = ds.store.Runs().Mutate(r.Context(), queue.DagRunKey(ti.DagID, ti.DagRun.RunID), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, fmt.Errorf("run %s of dag %s: %w", ti.DagRun.RunID, ti.DagID, ErrNotFound)
		}
		run, err := dag.UnmarshalRun(old)
		if err != nil {
			return nil, err
		}
		d, err := e.dagVersion(r.Context(), run.DagID, run.DagVersion)
		if err != nil {
			return nil, err
		}
		if skipped, err = run.SkipDownstream(d, ti.TaskID, refs, e.now()); err != nil {
			if errors.Is(err, dag.ErrNotFound) {
				return nil, badRequest("tasks: %v", err)
			}
			return nil, err
		}
		return run.Marshal()
	})
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Debug("downstream tasks skipped", "ti_id", id, "tasks", req.Tasks, "instances", skipped)
	w.WriteHeader(http.StatusNoContent)
}
