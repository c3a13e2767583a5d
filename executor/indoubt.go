package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// doubtSettle is how long after a record in doubt is first read back
// that it is read again: a write sent before NATS went away reaches the
// server when the client reconnects, and may be stored just after the
// first read that succeeds.
const doubtSettle = 10 * time.Second

// doubt is a record whose write failed with its outcome unknown.
type doubt struct {
	// until is when to stop reading the record back (zero until a read
	// succeeds).
	until time.Time
	// published is the activity or trigger id published for it last, so
	// each is published once however often the record is read.
	published string
}

// doubtWrite takes note of a write of record id whose outcome is unknown
// (store.inDoubt): the write may be stored although it failed, and then
// whatever was to follow it (the activity of a resumed task, the trigger
// of a deferred one) was not done.
func (e *Executor) doubtWrite(id string) {
	e.inDoubt.Store(id, &doubt{})
}

// reconcileInDoubt reads back every record in doubt and publishes what its
// state waits on: a queued task its activity, a deferred one its trigger,
// an ended try what follows its end (afterTry).
// Each is idempotent (the activity, trigger, callback or retry timer id is
// the message id, a claimed trigger is ignored, a DAG run applies a task's
// end once), so doing it for a write that was not stored, or whose
// follow-up was done, is harmless. Without this,
// a deferral or a resume whose write was stored only after the executor
// gave up on it (NATS restarted meanwhile) leaves a task deferred on a
// trigger no triggerer has, or queued on an activity no worker gets:
// neither ever ends.
func (e *Executor) reconcileInDoubt(ctx context.Context) {
	now := e.now()
	e.inDoubt.Range(func(k, v any) bool {
		id, d := k.(string), v.(*doubt)
		if !d.until.IsZero() && now.After(d.until) {
			e.inDoubt.CompareAndDelete(id, v)
			return true
		}
		ti, err := e.store.get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			// A create in doubt may be stored just after this read, as a
			// change may (doubtSettle); then it is gone for good.
			if d.until.IsZero() {
				d.until = now.Add(doubtSettle)
			}
			return true
		case err != nil:
			// NATS still away: read it again at the next scan.
			return ctx.Err() == nil
		}
		if d.until.IsZero() {
			d.until = now.Add(doubtSettle)
		}
		var what string
		switch {
		case ti.State == activity.StateQueued && ti.ActivityID != "" && d.published != ti.ActivityID:
			// Under a message id of its own: the activity's id may be in
			// the stream's duplicate window already, its first publish
			// stored, delivered and dead-lettered by a worker whose …/run
			// found no record yet (the create landed later, from the
			// client's reconnect buffer), and JetStream would drop it as a
			// duplicate. A second copy of an activity whose first is still
			// pending is harmless: …/run lets one worker have the try
			// (another gets 409), and a worker drops what it runs already.
			what = ti.ActivityID
			err = e.publishExecuteAs(ctx, ti, ti.ActivityID+republishSuffix)
		case ti.State == activity.StateDeferred && ti.Trigger != nil && d.published != ti.Trigger.ID:
			what = ti.Trigger.ID
			err = e.publishTrigger(ctx, ti.Trigger)
		case (ti.State.Terminal() || ti.State == activity.StateUpForRetry || ti.State == activity.StateUpForReschedule) &&
			d.published != endedMark(ti):
			// A try's end (or a cancel): what follows it, its callbacks,
			// retry timer and DAG run's progress, each idempotent (the
			// callback's and the timer's ids are their message ids, a
			// run applies a task's end once).
			what = endedMark(ti)
			e.afterTry(ctx, ti)
		default:
			return true
		}
		if err != nil {
			e.log.Warn("publish for a write in doubt", "ti_id", id, "state", ti.State, "err", err)
			return ctx.Err() == nil
		}
		d.published = what
		e.log.Info("published for a write in doubt", "ti_id", id, "state", ti.State, "id", what)
		return true
	})
}

// endedMark names the end of ti's try in doubt.published.
func endedMark(ti *activity.TaskInstance) string {
	return fmt.Sprintf("%s#%d:%s", ti.ID, ti.TryNumber, ti.State)
}

// republishSuffix ends the message id of an activity published again for
// a write in doubt.
const republishSuffix = ".again"
