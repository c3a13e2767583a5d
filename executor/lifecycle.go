package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

const (
	timerRetry = "retry"
	// timeoutGrace is how long past its execution timeout a running task may
	// go on before the executor fails it itself (the worker normally kills it
	// at the timeout and reports it).
	timeoutGrace = 10 * time.Second
	// retryTimerGrace: an up_for_retry task whose retry timer is this late is
	// requeued by the scan (the timer was lost).
	retryTimerGrace = 30 * time.Second
)

// Submit is queue_activity(ExecuteTask): it records a queued task instance
// for spec and publishes its activity. Invalid specs give activity.ErrInvalid.
func (e *Executor) Submit(ctx context.Context, spec activity.TaskSpec) (*activity.TaskInstance, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("submit: new id: %w", err)
	}
	return e.submit(ctx, spec, id.String(), "")
}

func (e *Executor) submit(ctx context.Context, spec activity.TaskSpec, id, idemKey string) (*activity.TaskInstance, error) {
	spec = spec.WithDefaults(e.now())
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Pool != "" {
		if !e.pools.poolExists(spec.Pool) {
			return nil, badRequest("pool %q does not exist (executor pools set %s --slots N makes it)", spec.Pool, spec.Pool)
		}
	}
	ti := activity.NewTaskInstance(id, spec, e.now())
	ti.IdempotencyKey = idemKey
	ti.NextActivityID()
	// The record is stored while the activity is published (one round trip
	// less before a worker has it): a …/run that overtakes the record
	// waits for it (store.awaitCreate here; a worker retries a 404 on
	// another executor).
	created := e.store.createAsync(ctx, ti)
	pubErr := e.publishExecute(ctx, ti)
	if err := <-created; err != nil {
		// Nothing is recorded: a published activity finds no record and is
		// dropped by the worker that pulls it.
		return nil, err
	}
	if err := pubErr; err != nil {
		reason := "could not queue the activity: " + err.Error()
		if _, ferr := e.store.mutate(context.WithoutCancel(ctx), ti.ID, func(r *activity.TaskInstance) error {
			return r.SetState(activity.StateFailed, reason, e.now())
		}); ferr != nil {
			e.log.Error("mark unpublished task failed", "ti_id", ti.ID, "err", ferr)
		}
		return nil, fmt.Errorf("submit %s: %w", ti.ID, err)
	}
	e.metrics.onQueued(ti.Queue, "submit")
	e.log.Debug("task queued", "ti_id", ti.ID, "queue", ti.Queue, "dag_id", ti.DagID, "task_id", ti.TaskID)
	return ti, nil
}

// publishExecute publishes the ExecuteTask activity of ti's current dispatch
// if its pool admits it now; otherwise the dispatch waits for admission
// (pools.go), which publishes it. It is idempotent: the activity id is the
// JetStream message id.
func (e *Executor) publishExecute(ctx context.Context, ti *activity.TaskInstance) error {
	return e.publishExecuteAs(ctx, ti, ti.ActivityID)
}

// publishExecuteAs is publishExecute under the JetStream message id msgID
// (another than the activity's own only for reconcileInDoubt's republish).
func (e *Executor) publishExecuteAs(ctx context.Context, ti *activity.TaskInstance, msgID string) error {
	if !e.pools.mayPublish(ti) {
		return nil
	}
	q, data, err := e.executeTask(ti)
	if err != nil {
		return err
	}
	return e.q.PublishActivity(ctx, q, msgID, data)
}

// executeTask encodes the ExecuteTask activity of ti's current dispatch
// and names the queue it goes on.
func (e *Executor) executeTask(ti *activity.TaskInstance) (queue string, data []byte, err error) {
	tok, err := e.tokens.issue(audWorkload, ti.ID, ti.TryNumber, ti.ActivityID, e.cfg.WorkloadTokenTTL)
	if err != nil {
		return "", nil, err
	}
	queuedAt := e.now()
	if ti.QueuedAt != nil {
		queuedAt = *ti.QueuedAt
	}
	a := activity.Activity{Kind: activity.KindExecuteTask, ExecuteTask: &activity.ExecuteTask{
		ID: ti.ActivityID, Token: tok, TI: ti.Key(), Queue: ti.Queue, Entrypoint: ti.Entrypoint,
		Params: ti.Params, NextMethod: ti.NextMethod, NextKwargs: ti.NextKwargs,
		ExecutionTimeout: remainingTimeout(ti), Retry: ti.Retry, QueuedAt: queuedAt, DagRun: ti.DagRun,
	}}
	data, err = a.Marshal()
	if err != nil {
		return "", nil, fmt.Errorf("encode activity %s: %w", ti.ActivityID, err)
	}
	return ti.Queue, data, nil
}

// remainingTimeout is the execution timeout left to a try that ran for
// ti.RunTime before deferring: execution_timeout counts running time only.
func remainingTimeout(ti *activity.TaskInstance) activity.Duration {
	if ti.ExecutionTimeout <= 0 {
		return 0
	}
	return max(ti.ExecutionTimeout-ti.RunTime, activity.Duration(time.Millisecond))
}

// endTry moves a running try to its outcome inside a mutation: a retry
// request becomes failed when no tries remain.
func (e *Executor) endTry(ti *activity.TaskInstance, to activity.State, reason string) error {
	now := e.now()
	if to == activity.StateUpForRetry && !ti.CanRetry() {
		to = activity.StateFailed
		if reason == "" {
			reason = "failed"
		}
		reason += fmt.Sprintf(" (try %d of %d, no retries left)", ti.TryNumber, ti.MaxTries)
	}
	if err := ti.SetState(to, reason, now); err != nil {
		return err
	}
	if to == activity.StateUpForRetry {
		at := now.Add(ti.Retry.DelayFor(ti.TryNumber + 1))
		ti.RetryAt = &at
	}
	return nil
}

// rescheduleTry moves a running try to up_for_reschedule inside a
// mutation: it runs again at `at` as the same try, consuming no retry
// (Airflow's reschedule-mode sensors).
func (e *Executor) rescheduleTry(ti *activity.TaskInstance, at time.Time, reason string) error {
	start := ti.StartDate
	if err := ti.SetState(activity.StateUpForReschedule, reason, e.now()); err != nil {
		return err
	}
	at = at.UTC()
	ti.RetryAt = &at
	ti.RescheduleCount++
	if ti.FirstRescheduleAt == nil {
		ti.FirstRescheduleAt = start
	}
	return nil
}

// afterTry does what follows a try's end once the record is written:
// schedule the retry, queue callbacks.
func (e *Executor) afterTry(ctx context.Context, ti *activity.TaskInstance) {
	ctx = context.WithoutCancel(ctx)
	switch ti.State {
	case activity.StateUpForRetry:
		e.scheduleRetry(ctx, ti)
		e.queueCallback(ctx, ti, "on_retry", ti.Callbacks.OnRetry)
	case activity.StateUpForReschedule:
		e.scheduleRetry(ctx, ti)
	case activity.StateSuccess:
		e.queueCallback(ctx, ti, "on_success", ti.Callbacks.OnSuccess)
	case activity.StateFailed:
		e.queueCallback(ctx, ti, "on_failure", ti.Callbacks.OnFailure)
	}
	e.dagTaskEnded(ctx, ti)
}

type retryTimer struct {
	ID  string `json:"id"`
	Try int    `json:"try"`
	// Reschedule is the reschedule count of an up_for_reschedule try's
	// timer (0 for a retry's).
	Reschedule int `json:"reschedule,omitempty"`
}

func (e *Executor) scheduleRetry(ctx context.Context, ti *activity.TaskInstance) {
	at := e.now()
	if ti.RetryAt != nil {
		at = *ti.RetryAt
	}
	rt, msgID := retryTimer{ID: ti.ID, Try: ti.TryNumber}, fmt.Sprintf("%s-%d", ti.ID, ti.TryNumber)
	if ti.State == activity.StateUpForReschedule {
		rt.Reschedule = ti.RescheduleCount
		msgID += fmt.Sprintf("-r%d", ti.RescheduleCount)
	}
	data, _ := json.Marshal(rt)
	if err := e.q.ScheduleTimer(ctx, timerRetry, msgID, at, data); err != nil {
		// The scan requeues it when the timer is late.
		e.log.Error("schedule retry", "ti_id", ti.ID, "try", ti.TryNumber, "err", err)
	}
}

// onRetryTimer starts the next try of an up_for_retry task.
func (e *Executor) onRetryTimer(ctx context.Context, m queue.Delivery) {
	var rt retryTimer
	if err := json.Unmarshal(m.Data(), &rt); err != nil || rt.ID == "" {
		e.log.Warn("drop undecodable retry timer", "err", err)
		_ = m.Term()
		return
	}
	if err := e.requeue(ctx, rt.ID, rt.Try, rt.Reschedule); err != nil {
		if errors.Is(err, ErrNotFound) {
			_ = m.Ack()
			return
		}
		e.log.Error("requeue for retry", "ti_id", rt.ID, "try", rt.Try, "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Ack()
}

// requeue moves up_for_retry try `try` to queued as try+1 and publishes it;
// with reschedule > 0, it moves up_for_reschedule try `try` (at that
// reschedule count) to queued as the same try. Repeating it is harmless: a
// record already queued for it is published again under the same message
// id.
func (e *Executor) requeue(ctx context.Context, id string, try, reschedule int) error {
	changed := false
	ti, err := e.store.mutate(ctx, id, func(ti *activity.TaskInstance) error {
		changed = false
		switch {
		case reschedule > 0 && ti.State == activity.StateUpForReschedule && ti.TryNumber == try && ti.RescheduleCount == reschedule:
			if err := ti.Reschedule(e.now()); err != nil {
				return err
			}
			ti.NextActivityID()
			changed = true
			return nil
		case reschedule > 0 && ti.State == activity.StateQueued && ti.TryNumber == try && ti.RescheduleCount == reschedule:
			return errUnchanged
		case reschedule > 0:
			return errStale
		case ti.State == activity.StateUpForRetry && ti.TryNumber == try:
			if err := ti.NewTry(e.now()); err != nil {
				return err
			}
			ti.NextActivityID()
			changed = true
			return nil
		case ti.State == activity.StateQueued && ti.TryNumber == try+1:
			return errUnchanged
		default:
			return errStale
		}
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := e.publishExecute(ctx, ti); err != nil {
		// Queued now, so no longer found by the retry scan: the scan
		// publishes it again.
		e.unpublished.Store(ti.ID, unpublished{activityID: ti.ActivityID})
		return err
	}
	if changed && reschedule > 0 {
		e.metrics.onQueued(ti.Queue, "reschedule")
	} else if changed {
		e.metrics.onQueued(ti.Queue, "retry")
	}
	return nil
}

var errStale = errors.New("stale")

func (e *Executor) queueCallback(ctx context.Context, ti *activity.TaskInstance, on string, cb *activity.Callback) {
	if cb == nil {
		return
	}
	q := cb.Queue
	if q == "" {
		q = ti.Queue
	}
	id := fmt.Sprintf("%s.%d.%s", ti.ID, ti.TryNumber, on)
	tok, err := e.tokens.issue(audWorkload, ti.ID, ti.TryNumber, id, e.cfg.WorkloadTokenTTL)
	if err == nil {
		a := activity.Activity{Kind: activity.KindRunCallback, RunCallback: &activity.RunCallback{
			ID: id, Token: tok, On: on, TI: ti.Key(), State: ti.State, Reason: ti.Reason,
			Queue: q, Entrypoint: cb.Entrypoint, QueuedAt: e.now(),
		}}
		var data []byte
		if data, err = a.Marshal(); err == nil {
			err = e.q.PublishActivity(ctx, q, id, data)
		}
	}
	if err != nil {
		e.log.Error("queue callback", "ti_id", ti.ID, "callback", on, "err", err)
		return
	}
	e.log.Debug("callback queued", "ti_id", ti.ID, "callback", on, "queue", q)
}

// Cancel moves a task instance that has not finished to cancelled. A worker
// running it learns so from its next heartbeat (409) and kills the process.
func (e *Executor) Cancel(ctx context.Context, id, reason string) (*activity.TaskInstance, error) {
	if reason == "" {
		reason = "cancelled by operator"
	}
	var triggerID string
	ti, err := e.store.mutate(ctx, id, func(ti *activity.TaskInstance) error {
		if ti.State.Terminal() {
			return fmt.Errorf("%w: task instance is already %s", ErrConflict, ti.State)
		}
		triggerID = ""
		if ti.State == activity.StateDeferred && ti.Trigger != nil {
			triggerID = ti.Trigger.ID
		}
		return ti.SetState(activity.StateCancelled, reason, e.now())
	})
	if err == nil {
		e.metrics.onEnded(ti)
		e.dagTaskEnded(ctx, ti)
	}
	if err == nil && triggerID != "" {
		// The triggerer running it stops.
		e.retireClaim(context.WithoutCancel(ctx), triggerID)
	}
	return ti, err
}

// Get returns a task instance from the store.
func (e *Executor) Get(ctx context.Context, id string) (*activity.TaskInstance, error) {
	return e.store.get(ctx, id)
}

// List returns a page of the task instances matching f (see Page for the
// order) and how many match in all.
func (e *Executor) List(ctx context.Context, f Filter) (Page, error) { return e.store.list(ctx, f) }

// failRunning ends a running try that the executor gave up on (zombie,
// timeout) if it is still the try it looked at, and reports whether it did.
func (e *Executor) failRunning(ctx context.Context, id string, try int, stillBad func(*activity.TaskInstance) bool, reason string) bool {
	ti, err := e.store.mutate(ctx, id, func(ti *activity.TaskInstance) error {
		if ti.State != activity.StateRunning || ti.TryNumber != try || !stillBad(ti) {
			return errStale
		}
		return e.endTry(ti, activity.StateUpForRetry, reason)
	})
	if errors.Is(err, errStale) || errors.Is(err, ErrNotFound) {
		return false
	}
	if err != nil {
		e.log.Error("fail running task", "ti_id", id, "reason", reason, "err", err)
		return false
	}
	e.log.Warn("task try failed by executor", "ti_id", id, "try", try, "reason", reason, "state", ti.State)
	e.metrics.onEnded(ti)
	e.afterTry(ctx, ti)
	return true
}

// republishQueued publishes again the activity of every queued task
// instance, once at start: an executor that stopped between recording a
// task and publishing its activity left it queued with nothing on the
// queue. Publishing is idempotent within the de-duplication window, and a
// worker that pulls a stale copy later is refused by …/run (409) and drops
// it, so a task never runs twice for it.
func (e *Executor) republishQueued(ctx context.Context) {
	var queued []*activity.TaskInstance
	e.store.each(activity.StateQueued, func(ti *activity.TaskInstance) { queued = append(queued, ti) })
	n := 0
	for _, ti := range queued {
		if ctx.Err() != nil {
			return
		}
		if err := e.publishExecute(ctx, ti); err != nil {
			e.log.Error("republish queued task", "ti_id", ti.ID, "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		e.log.Info("republished queued tasks", "count", n)
	}
}

func (e *Executor) scanLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.scan(ctx)
	}
}

// scan finds zombies, tasks past their execution timeout, deferred tasks
// past their trigger's timeout, retries whose timer is overdue, and
// publishes again what could not be published.
func (e *Executor) scan(ctx context.Context) {
	now := e.now()
	zombie := func(ti *activity.TaskInstance) bool {
		return ti.HeartbeatAt != nil && now.Sub(*ti.HeartbeatAt) > e.cfg.ZombieThreshold
	}
	timedOut := func(ti *activity.TaskInstance) bool {
		return ti.ExecutionTimeout > 0 && ti.StartDate != nil &&
			ti.RunTime.D()+now.Sub(*ti.StartDate) > ti.ExecutionTimeout.D()+timeoutGrace
	}
	e.store.each(activity.StateRunning, func(ti *activity.TaskInstance) {
		switch {
		case zombie(ti):
			if e.failRunning(ctx, ti.ID, ti.TryNumber, zombie,
				fmt.Sprintf("zombie: no heartbeat from %s for %s", ti.Hostname, now.Sub(*ti.HeartbeatAt).Round(100*time.Millisecond))) {
				e.metrics.onZombie()
			}
		case timedOut(ti):
			e.failRunning(ctx, ti.ID, ti.TryNumber, timedOut,
				fmt.Sprintf("execution timeout after %s", ti.ExecutionTimeout.D()))
		}
	})
	e.scanDeferred(ctx, now)
	e.republishFailed(ctx)
	e.reconcileInDoubt(ctx)
	e.scanRuns(ctx)
	e.scanSchedules(ctx)
	e.store.each(activity.StateUpForRetry, func(ti *activity.TaskInstance) {
		if ti.RetryAt != nil && now.Sub(*ti.RetryAt) > retryTimerGrace {
			if err := e.requeue(ctx, ti.ID, ti.TryNumber, 0); err != nil {
				e.log.Error("requeue overdue retry", "ti_id", ti.ID, "err", err)
			}
		}
	})
	e.store.each(activity.StateUpForReschedule, func(ti *activity.TaskInstance) {
		if ti.RetryAt != nil && now.Sub(*ti.RetryAt) > retryTimerGrace {
			if err := e.requeue(ctx, ti.ID, ti.TryNumber, ti.RescheduleCount); err != nil {
				e.log.Error("requeue overdue reschedule", "ti_id", ti.ID, "err", err)
			}
		}
	})
}

// onMaxDeliveries handles an activity JetStream gave up delivering: its task
// fails with that reason, and the message moves to the dead-letter stream.
func (e *Executor) onMaxDeliveries(ctx context.Context, seq uint64) {
	msg, err := e.q.GetActivityBySeq(ctx, seq)
	if err != nil {
		e.log.Warn("read activity that exhausted its deliveries", "seq", seq, "err", err)
		return
	}
	qname := msg.Queue
	reason := "activity exhausted its JetStream deliveries without a worker accepting it"
	a, derr := activity.Decode(msg.Data)
	switch {
	case derr != nil:
		reason += "; and it is malformed: " + derr.Error()
	case a.ExecuteTask != nil:
		id, actID := a.ExecuteTask.TI.ID, a.ExecuteTask.ID
		ti, err := e.store.mutate(ctx, id, func(ti *activity.TaskInstance) error {
			if ti.State != activity.StateQueued || ti.ActivityID != actID {
				return errStale
			}
			return ti.SetState(activity.StateFailed, reason, e.now())
		})
		switch {
		case err == nil:
			e.log.Warn("task failed: deliveries exhausted", "ti_id", id, "queue", qname)
			e.afterTry(ctx, ti)
		case !errors.Is(err, errStale) && !errors.Is(err, ErrNotFound):
			e.log.Error("fail task with exhausted deliveries", "ti_id", id, "err", err)
			return
		}
	}
	if err := e.q.PublishDeadLetter(ctx, qname, msg.Data, reason); err != nil {
		e.log.Error("dead-letter activity", "seq", seq, "err", err)
		return
	}
	if err := e.q.DeleteActivity(ctx, seq); err != nil {
		e.log.Warn("delete dead-lettered activity", "seq", seq, "err", err)
	}
}

var _ = queue.BucketTaskInstances
