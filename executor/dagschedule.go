package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/queue"
)

// timerSchedule is the timer kind of DAG schedules.
const timerSchedule = "dagschedule"

// scheduleTimer is the payload of a DAG's schedule timer: the logical
// date of the run it creates.
type scheduleTimer struct {
	DagID string    `json:"dag_id"`
	At    time.Time `json:"at"`
}

func scheduleTimerID(dagID string, at time.Time) string {
	return fmt.Sprintf("%s-%d", dagID, at.Unix())
}

// scheduleOverdue: a DAG whose next scheduled run is this late has lost
// its timer (or the executor was down); the scan fires it.
const scheduleOverdue = 30 * time.Second

// planSchedule arranges the next scheduled run of a DAG that has a
// schedule, is not paused and has none planned (a new version, an
// unpause): a durable timer (a JetStream scheduled message) at the next
// tick, recorded as NextRunAt. The timer is scheduled before the record
// says so, under an id of the DAG and tick: a replica planning the same
// tick schedules the same timer, which counts once.
func (e *Executor) planSchedule(ctx context.Context, rec *dag.Record) {
	if rec == nil || rec.Paused || rec.DAG.Schedule == "" || rec.NextRunAt != nil {
		return
	}
	last := time.Time{}
	if rec.LastScheduled != nil {
		last = *rec.LastScheduled
	}
	next, err := rec.DAG.NextRun(last, e.now())
	if err != nil {
		e.log.Warn("dag schedule: no next run", "dag_id", rec.DagID, "err", err)
		return
	}
	e.advanceSchedule(ctx, rec.DagID, rec.Version, nil, next)
}

// advanceSchedule schedules the timer of tick next and records it as the
// DAG's NextRunAt, if the record (at version) still plans what it did
// (prev: nil for nothing planned). It reports whether it did.
func (e *Executor) advanceSchedule(ctx context.Context, dagID string, version int, prev *time.Time, next time.Time) bool {
	data, _ := json.Marshal(scheduleTimer{DagID: dagID, At: next})
	if err := e.q.ScheduleTimer(ctx, timerSchedule, scheduleTimerID(dagID, next), next, data); err != nil {
		e.log.Error("dag schedule: schedule timer; the scan will try again", "dag_id", dagID, "at", next, "err", err)
		return false
	}
	_, err := e.dags.store.Dags().Mutate(ctx, queue.DagKey(dagID), func(old []byte) ([]byte, error) {
		if old == nil {
			return nil, errNoRun
		}
		var r dag.Record
		if err := json.Unmarshal(old, &r); err != nil {
			return nil, err
		}
		if r.Version != version || r.Paused || !sameTime(r.NextRunAt, prev) {
			return nil, errUnchanged
		}
		if prev != nil {
			p := *prev
			r.LastScheduled = &p
		}
		r.NextRunAt = &next
		return json.Marshal(&r)
	})
	if err != nil {
		if !errors.Is(err, errUnchanged) && !errors.Is(err, errNoRun) {
			e.log.Error("dag schedule: record next run", "dag_id", dagID, "err", err)
		}
		return false
	}
	e.log.Debug("dag schedule: next run planned", "dag_id", dagID, "at", next)
	return true
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// fireSchedule creates the scheduled run of tick at, if the DAG still
// plans it, and plans the next tick. The run's id comes from the tick
// (dag.RunIDScheduled), so a timer delivered twice, or to two replicas,
// creates one run. A paused or deleted DAG, or a tick no longer planned
// (the DAG changed), creates nothing.
func (e *Executor) fireSchedule(ctx context.Context, dagID string, at time.Time) error {
	rec, err := e.GetDag(ctx, dagID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Paused || rec.NextRunAt == nil || !rec.NextRunAt.Equal(at) {
		return nil
	}
	if _, _, err := e.createRun(ctx, rec, dag.RunIDScheduled(at), dag.RunTypeScheduled, at, nil); err != nil {
		return err
	}
	next, err := rec.DAG.NextRun(at, e.now())
	if err != nil {
		e.log.Warn("dag schedule: no next run", "dag_id", dagID, "err", err)
		return nil
	}
	e.advanceSchedule(ctx, dagID, rec.Version, &at, next)
	return nil
}

// onScheduleTimer handles a due schedule timer.
func (e *Executor) onScheduleTimer(ctx context.Context, ack, nak func() error, term func() error, data []byte) {
	var st scheduleTimer
	if err := json.Unmarshal(data, &st); err != nil || st.DagID == "" {
		e.log.Warn("drop undecodable schedule timer", "err", err)
		_ = term()
		return
	}
	if err := e.fireSchedule(ctx, st.DagID, st.At); err != nil {
		e.log.Error("dag schedule: create scheduled run", "dag_id", st.DagID, "at", st.At, "err", err)
		_ = nak()
		return
	}
	_ = ack()
}

// scanSchedules is the backstop of the schedule timers: a DAG that
// should have a next run planned and has none (a crash between a version
// and its plan), or whose planned run is overdue (its timer lost), is
// planned or fired now.
func (e *Executor) scanSchedules(ctx context.Context) {
	recs, err := e.ListDags(ctx)
	if err != nil {
		return
	}
	now := e.now()
	for _, rec := range recs {
		switch {
		case rec.Paused || rec.DAG.Schedule == "":
		case rec.NextRunAt == nil:
			e.planSchedule(ctx, rec)
		case now.Sub(*rec.NextRunAt) > scheduleOverdue:
			if err := e.fireSchedule(ctx, rec.DagID, *rec.NextRunAt); err != nil {
				e.log.Warn("dag schedule: fire overdue run", "dag_id", rec.DagID, "err", err)
			}
		}
	}
}
