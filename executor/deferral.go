package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/trigger"
)

// triggerTimeoutGrace is how long past a trigger's timeout the executor
// waits for a triggerer to report it before it fails the task itself (the
// backstop when no triggerer runs).
const triggerTimeoutGrace = 2 * time.Second

// deferTry moves a running try to deferred on trigger t inside a mutation.
// An unknown kind or bad kwargs fail the task at once, without a retry (the
// same trigger would be refused again): the returned invalid error says
// why, and nothing is published.
func (e *Executor) deferTry(ti *activity.TaskInstance, req *execution.StateRequest, now time.Time) (invalid error, err error) {
	t, nerr := trigger.Normalize(*req.Trigger, now)
	if nerr != nil {
		reason := "defer: " + nerr.Error()
		return nerr, ti.SetState(activity.StateFailed, reason, now)
	}
	if err := ti.SetState(activity.StateDeferred, "", now); err != nil {
		return nil, err
	}
	t.ID, t.TIID, t.Try, t.DeferredAt = ti.ActivityID, ti.ID, ti.TryNumber, now.UTC()
	t.Token = "" // minted at publish (publishTrigger), never stored
	if ti.StartDate != nil {
		ti.RunTime += activity.Duration(now.Sub(*ti.StartDate))
	}
	ti.Trigger, ti.NextMethod, ti.NextKwargs = &t, req.NextMethod, req.NextKwargs
	return nil, nil
}

// publishTrigger hands a deferred task's trigger to the triggerers. It is
// idempotent within the duplicates window (the trigger id is the message
// id), and a triggerer that gets a trigger already claimed ignores it. An
// "airflow" trigger goes with a trigger token (its Token; the record keeps
// none).
func (e *Executor) publishTrigger(ctx context.Context, t *activity.Trigger) error {
	if t.Kind == trigger.KindAirflow {
		tok, err := e.triggerToken(t)
		if err != nil {
			return err
		}
		c := *t
		c.Token = tok
		t = &c
	}
	data, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode trigger %s: %w", t.ID, err)
	}
	return e.q.PublishTrigger(ctx, t.ID, data)
}

// triggerToken mints t's trigger token: good for WorkloadTokenTTL or
// until a minute past the trigger's timeout, whichever is later (and
// refreshed when half spent on use), and only while t's task waits on t.
func (e *Executor) triggerToken(t *activity.Trigger) (string, error) {
	ttl := e.cfg.WorkloadTokenTTL
	if t.Timeout > 0 {
		ttl = max(ttl, t.DeferredAt.Add(time.Duration(t.Timeout)+time.Minute).Sub(e.now()))
	}
	return e.tokens.issue(audTrigger, t.TIID, t.Try, t.ID, ttl)
}

// republishDeferred publishes again the trigger of every deferred task at
// start: one whose publish was lost (an executor stopped in between) is
// handed out; others are de-duplicated or ignored by the triggerers.
func (e *Executor) republishDeferred(ctx context.Context) {
	var deferred []*activity.TaskInstance
	e.store.each(activity.StateDeferred, func(ti *activity.TaskInstance) { deferred = append(deferred, ti) })
	for _, ti := range deferred {
		if ctx.Err() != nil || ti.Trigger == nil {
			continue
		}
		if err := e.publishTrigger(ctx, ti.Trigger); err != nil {
			e.log.Error("republish trigger", "ti_id", ti.ID, "trigger_id", ti.Trigger.ID, "err", err)
		}
	}
}

// onEvent resumes the task of a fired trigger: deferred → queued exactly
// once (compare-and-set on the record, which must still be deferred on this
// very trigger), then an ExecuteTask with next_method, next_kwargs and the
// event. An event of a trigger the task no longer waits on is dropped.
func (e *Executor) onEvent(ctx context.Context, m queue.Delivery) {
	ev, err := activity.DecodeTriggerEvent(m.Data())
	if err != nil {
		e.log.Warn("drop undecodable trigger event", "subject", m.Subject(), "err", err)
		_ = m.Term()
		return
	}
	if c, ok := e.store.cached(ev.TIID); ok && deferralPending(c.ti, ev) {
		// The trigger went out beside its record's deferred write
		// (handleState), and its event came back first: the write, once
		// ended.
		e.store.awaitWrite(ctx, ev.TIID)
	}
	if ev.Error == "" {
		if c, ok := e.store.cached(ev.TIID); ok && c.ti.Trigger != nil && c.ti.Trigger.ID == ev.TriggerID &&
			(ev.End != "" || c.ti.Trigger.EndFromTrigger) {
			e.endFromTrigger(ctx, m, ev)
			return
		}
	}
	// The record is queued beside the resumed activity's publish: a
	// …/run that overtakes the write waits for it (handleRun).
	ti, published, err := e.store.mutateBeside(ctx, ev.TIID, func(ti *activity.TaskInstance) error {
		if deferralPending(ti, ev) {
			return errDeferralPending
		}
		if ti.State != activity.StateDeferred || ti.Trigger == nil || ti.Trigger.ID != ev.TriggerID || ti.TryNumber != ev.Try {
			return errStale
		}
		if ev.Error == "" && (ev.End != "" || ti.Trigger.EndFromTrigger) {
			return errEndFromTrigger
		}
		if err := ti.SetState(activity.StateQueued, "", e.now()); err != nil {
			return err
		}
		if ev.Error != "" {
			ti.NextMethod, ti.NextKwargs = activity.FailMethod, map[string]any{"error": ev.Error}
		} else {
			kw := maps.Clone(ti.NextKwargs)
			if kw == nil {
				kw = make(map[string]any, 1)
			}
			kw["event"] = ev.Payload
			ti.NextKwargs = kw
		}
		ti.Trigger = nil
		ti.NextActivityID()
		return nil
	}, func(ti *activity.TaskInstance) <-chan error {
		return goPublish(func() error { return e.publishExecute(ctx, ti) })
	})
	switch {
	case errors.Is(err, errEndFromTrigger):
		e.endFromTrigger(ctx, m, ev)
		return
	case err != nil:
		e.settleFailedEvent(ctx, m, ev, "resume deferred task", err)
		return
	}
	e.log.Debug("task resumed", "ti_id", ti.ID, "trigger_id", ev.TriggerID, "next_method", ti.NextMethod, "fired_by", ev.FiredBy)
	// The record is queued now: its activity must go out, if not now then
	// from the scan (and a restart republishes queued tasks too).
	if published != nil {
		err = <-published
	} else {
		err = e.publishExecute(ctx, ti)
	}
	if err != nil {
		e.log.Error("publish resumed task; the scan will try again", "ti_id", ti.ID, "err", err)
		e.unpublished.Store(ti.ID, unpublished{activityID: ti.ActivityID})
	} else {
		e.metrics.onQueued(ti.Queue, "resume")
	}
	_ = m.Ack()
	e.retireClaim(ctx, ev.TriggerID)
}

// deferralPending reports whether ti is still running the dispatch whose
// trigger fired ev: its deferred write is under way (the trigger was
// published beside it), or stored but not yet seen here.
func deferralPending(ti *activity.TaskInstance, ev *activity.TriggerEvent) bool {
	return ti.State == activity.StateRunning && ti.ActivityID == ev.TriggerID && ti.TryNumber == ev.Try
}

// errDeferralPending: an event came back before its task's deferral was
// recorded (deferralPending).
var errDeferralPending = errors.New("the trigger's deferral is not recorded yet")

// errEndFromTrigger aborts a resume whose event ends the task instead.
var errEndFromTrigger = errors.New("event ends the task")

// endFromTrigger ends a deferred task with its trigger's event, without
// resuming it (Airflow's end_from_trigger, or a trigger that yielded
// TaskSuccessEvent, TaskFailedEvent or TaskSkippedEvent): the event's
// XComs are pushed as the task's own, then the task moves to the event's
// end state (success when the trigger's event has none) exactly once, by
// compare-and-set, and what follows a try's end (callbacks, the DAG run's
// downstream) follows.
func (e *Executor) endFromTrigger(ctx context.Context, m queue.Delivery, ev *activity.TriggerEvent) {
	end := ev.End
	if end == "" {
		end = activity.StateSuccess
	}
	c, ok := e.store.cached(ev.TIID)
	if ok && c.ti.State == activity.StateDeferred && c.ti.Trigger != nil && c.ti.Trigger.ID == ev.TriggerID {
		ti := c.ti
		for _, key := range slices.Sorted(maps.Keys(ev.XComs)) {
			data, err := json.Marshal(ev.XComs[key])
			if err == nil {
				_, err = e.xcom.Put(ctx, xcomKey(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex, key), data)
			}
			if err != nil {
				e.log.Error("push xcom of a trigger's end event", "ti_id", ti.ID, "key", key, "err", err)
				_ = m.NakWithDelay(time.Second)
				return
			}
		}
	}
	var note string
	if end == activity.StateSuccess && ok && c.ti.State == activity.StateDeferred && c.ti.Trigger != nil && c.ti.Trigger.ID == ev.TriggerID {
		var err error
		if note, err = e.applySkipMixin(ctx, c.ti); err != nil {
			e.log.Error("end deferred task from its trigger", "ti_id", ev.TIID, "err", err)
			_ = m.NakWithDelay(time.Second)
			return
		}
	}
	var classpath string
	ti, err := e.store.mutate(ctx, ev.TIID, func(ti *activity.TaskInstance) error {
		if ti.State != activity.StateDeferred || ti.Trigger == nil || ti.Trigger.ID != ev.TriggerID || ti.TryNumber != ev.Try {
			return errStale
		}
		classpath = ti.Trigger.Classpath
		if cp, ok := ti.Trigger.Kwargs["classpath"].(string); ok && cp != "" {
			classpath = cp
		}
		reason := note
		if end != activity.StateSuccess {
			reason = fmt.Sprintf("ended %s by its trigger %s", end, classpath)
		}
		if err := ti.SetState(end, reason, e.now()); err != nil {
			return err
		}
		ti.Trigger = nil
		return nil
	})
	switch {
	case err != nil:
		e.settleFailedEvent(ctx, m, ev, "end deferred task from its trigger", err)
		return
	}
	e.log.Debug("task ended by its trigger", "ti_id", ti.ID, "trigger_id", ev.TriggerID, "state", ti.State, "fired_by", ev.FiredBy)
	e.metrics.onEnded(ti)
	e.afterTry(ctx, ti)
	_ = m.Ack()
	e.retireClaim(ctx, ev.TriggerID)
}

// settleFailedEvent settles a trigger event whose task could not take it:
// a stale event (the task moved on, or is gone) is acked and its claim
// retired; any other failure is redelivered in a second.
func (e *Executor) settleFailedEvent(ctx context.Context, m queue.Delivery, ev *activity.TriggerEvent, what string, err error) {
	if errors.Is(err, errStale) || errors.Is(err, ErrNotFound) {
		e.log.Debug("drop stale trigger event", "what", what, "ti_id", ev.TIID, "trigger_id", ev.TriggerID, "fired_by", ev.FiredBy)
		_ = m.Ack()
		e.retireClaim(ctx, ev.TriggerID)
		return
	}
	if errors.Is(err, errDeferralPending) {
		// Another replica's deferred write, not yet stored: again shortly
		// (later each time, up to the second of any other failure).
		delay := pendingEventDelay
		if info, ok := m.Info(); ok {
			delay = min(time.Duration(max(info.Delivered, 1))*pendingEventDelay, time.Second)
		}
		e.earlyEvents.Add(1)
		e.log.Debug("trigger event before its deferral; redelivered", "ti_id", ev.TIID, "trigger_id", ev.TriggerID, "delay", delay)
		_ = m.NakWithDelay(delay)
		return
	}
	e.log.Error(what, "ti_id", ev.TIID, "trigger_id", ev.TriggerID, "err", err)
	_ = m.NakWithDelay(time.Second)
}

// pendingEventDelay is how long an event that came back before its
// task's deferral was recorded waits before it is delivered again.
const pendingEventDelay = 25 * time.Millisecond

// retireClaim removes a trigger's claim, so a triggerer still running it
// stops.
func (e *Executor) retireClaim(ctx context.Context, triggerID string) {
	if err := e.q.Bucket(queue.BucketTriggers).Delete(ctx, triggerID); err != nil && ctx.Err() == nil {
		e.log.Debug("retire trigger claim", "trigger_id", triggerID, "err", err)
	}
}

// unpublished is what a task waits on that could not be published: the
// trigger of a deferred task, or the activity of a queued one.
type unpublished struct {
	trigger    *activity.Trigger // while the task is deferred on it
	activityID string            // while the task is queued for it
}

// republishFailed publishes again what could not be published, while its
// task still waits on it; a restart does the same for every task
// (republishQueued, republishDeferred).
func (e *Executor) republishFailed(ctx context.Context) {
	e.unpublished.Range(func(k, v any) bool {
		id, u := k.(string), v.(unpublished)
		c, ok := e.store.cached(id)
		var err error
		switch {
		case !ok:
			e.unpublished.Delete(id)
			return true
		case u.trigger != nil && c.ti.State == activity.StateDeferred && c.ti.Trigger != nil && c.ti.Trigger.ID == u.trigger.ID:
			err = e.publishTrigger(ctx, u.trigger)
		case u.activityID != "" && c.ti.State == activity.StateQueued && c.ti.ActivityID == u.activityID:
			err = e.publishExecute(ctx, c.ti)
		default: // the task moved on
			e.unpublished.Delete(id)
			return true
		}
		if err != nil {
			e.log.Warn("publish again", "ti_id", id, "err", err)
			return ctx.Err() == nil
		}
		e.log.Info("published after a failed attempt", "ti_id", id, "trigger", u.trigger != nil, "activity_id", u.activityID)
		e.unpublished.Delete(id)
		return true
	})
}

// scanDeferred is the timeout backstop: a deferred task whose trigger is
// past its timeout (and grace) gets the failure event a triggerer would
// have published. Both publish under the trigger id, so only one counts.
func (e *Executor) scanDeferred(ctx context.Context, now time.Time) {
	e.store.each(activity.StateDeferred, func(ti *activity.TaskInstance) {
		t := ti.Trigger
		if t == nil || t.Timeout <= 0 || now.Sub(t.DeferredAt) <= t.Timeout.D()+triggerTimeoutGrace {
			return
		}
		ev := activity.TriggerEvent{TriggerID: t.ID, TIID: ti.ID, Try: ti.TryNumber,
			Error:   fmt.Sprintf("trigger timeout after %s (no triggerer reported it; enforced by the executor)", t.Timeout.D()),
			FiredAt: now.UTC(), FiredBy: "executor"}
		data, _ := json.Marshal(ev)
		if err := e.q.PublishEvent(ctx, ti.ID, t.ID, data); err != nil {
			e.log.Error("publish trigger timeout", "ti_id", ti.ID, "trigger_id", t.ID, "err", err)
		}
	})
}

// SendEvent records an external event that fires the "event" triggers
// waiting on name (those that deferred at or before now, including ones no
// triggerer runs yet).
func (e *Executor) SendEvent(ctx context.Context, name string, payload any) (*activity.ExternalEvent, error) {
	if err := activity.ValidateEventName(name); err != nil {
		return nil, err
	}
	ev := &activity.ExternalEvent{Name: name, Payload: payload, SentAt: e.now().UTC()}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: event payload: %w", activity.ErrInvalid, err)
	}
	if _, err := e.q.Bucket(queue.BucketExternalEvents).Put(ctx, queue.ExternalEventKey(name), data); err != nil {
		return nil, fmt.Errorf("send event %s: %w", name, err)
	}
	e.log.Info("external event sent", "name", name)
	return ev, nil
}

// handleSendEvent is POST /api/v1/events/{name}; the body, if any, is the
// event's payload: any JSON value.
func (e *Executor) handleSendEvent(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.cfg.MaxBody))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	var payload any
	if len(bytes.TrimSpace(data)) > 0 {
		if !json.Valid(data) {
			e.writeError(w, r, badRequest("body: the event payload must be JSON"))
			return
		}
		if payload, err = execution.DecodeValue(data); err != nil {
			e.writeError(w, r, badRequest("body: %v", err))
			return
		}
	}
	ev, err := e.SendEvent(r.Context(), r.PathValue("name"), payload)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, ev)
}
