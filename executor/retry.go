package executor

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// Retry starts a new try of a failed task instance, at an operator's
// request: the record moves to queued as try TryNumber+1 (MaxTries grows
// when the retries were spent) and its ExecuteTask activity is published.
// Only a failed task may be retried; any other state is ErrConflict, and
// an unknown id ErrNotFound.
func (e *Executor) Retry(ctx context.Context, id string) (*activity.TaskInstance, error) {
	ti, err := e.store.mutate(ctx, id, func(ti *activity.TaskInstance) error {
		if ti.State != activity.StateFailed {
			return fmt.Errorf("%w: task instance is %s: only a failed task can be retried", ErrConflict, ti.State)
		}
		if err := ti.NewTry(e.now()); err != nil {
			return err
		}
		ti.Reason = "retried by operator"
		ti.NextActivityID()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retry task instance %s: %w", id, err)
	}
	if err := e.publishExecute(ctx, ti); err != nil {
		// Nothing would run the queued try: give the failed state back, with
		// why, so the operator can retry again.
		reason := "could not queue the retry: " + err.Error()
		if _, ferr := e.store.mutate(context.WithoutCancel(ctx), id, func(r *activity.TaskInstance) error {
			if r.State != activity.StateQueued || r.ActivityID != ti.ActivityID {
				return errUnchanged
			}
			return r.SetState(activity.StateFailed, reason, e.now())
		}); ferr != nil {
			e.log.Error("mark unpublished retry failed", "ti_id", id, "err", ferr)
		}
		return nil, fmt.Errorf("retry task instance %s: %w", id, err)
	}
	e.log.Info("task retried by operator", "ti_id", id, "try", ti.TryNumber, "queue", ti.Queue)
	return ti, nil
}

// handleRetry is POST /api/v1/task-instances/{id}/retry: 202 with the
// queued task instance.
func (e *Executor) handleRetry(w http.ResponseWriter, r *http.Request) {
	ti, err := e.Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ti)
}
