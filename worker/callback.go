package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/queue"
)

// runCallback runs a RunCallback activity's entrypoint in its queue's
// runtime. It changes no task state: there is no run, heartbeat or state
// call, and an SDK runtime's API requests are refused. Its log lines go to
// the try it concerns. The message is kept alive while it runs and acked
// when it is done, failed or not; one killed by Stop is Nak'd to run again.
func (w *Worker) runCallback(log *slog.Logger, q string, msg queue.Delivery, cb *activity.RunCallback) {
	w.running.Add(1)
	defer w.running.Add(-1)
	log = log.With("ti_id", cb.TI.ID, "try_number", cb.TI.TryNumber, "callback", cb.On)
	stopKeepAlive := w.keepAlive(msg)
	defer stopKeepAlive()

	tl := newTaskLog(w.cfg.Queue, cb.TI.ID, cb.TI.TryNumber, log)
	ti := cb.TI
	j := &job{
		w: w, log: log, tl: tl, rt: w.cfg.Runtimes[q], entry: cb.Entrypoint, ti: ti,
		env: append(tiEnv(ti, q),
			"TASKWIRE_CALLBACK="+cb.On,
			"TASKWIRE_STATE="+string(cb.State),
			"TASKWIRE_REASON="+cb.Reason),
		startup: protocol.StartupDetails{
			Type: protocol.TypeStartupDetails,
			TI: protocol.TaskInstance{ID: ti.ID, DagID: ti.DagID, TaskID: ti.TaskID, RunID: ti.RunID,
				MapIndex: ti.MapIndex, TryNumber: ti.TryNumber},
			Context:   protocol.RunContext{Queue: q, Entrypoint: cb.Entrypoint.Task},
			StartDate: time.Now().UTC().Format(time.RFC3339Nano),
		},
	}
	tl.worker("info", fmt.Sprintf("running %s callback on host %s", cb.On, w.cfg.Hostname))
	out := j.runSafely(w.taskCtx)
	switch {
	case out.killed != nil:
		tl.worker("warning", "callback killed: "+out.killed.Error())
	case out.state == activity.StateSuccess:
		tl.worker("info", cb.On+" callback succeeded")
	default:
		tl.worker("error", fmt.Sprintf("%s callback failed: %s", cb.On, describe(out)))
	}
	w.closeLog(log, tl)

	if out.killed != nil && errors.Is(out.killed, errShutdown) {
		_ = msg.Nak()
		log.Info("callback interrupted by shutdown; it will run again")
		return
	}
	if out.state != activity.StateSuccess {
		log.Warn("callback failed", "state", out.state, "reason", out.reason)
	} else {
		log.Info("callback done")
	}
	ctx, cancel := context.WithTimeout(w.hardCtx, 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		log.Warn("ack callback", "err", err)
	}
}
