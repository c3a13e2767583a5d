package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// nakDelay is how long an activity waits before redelivery when the
// executor could not be reached.
const nakDelay = 2 * time.Second

// A …/run answered 404 is tried notFoundDeliveries times, notFoundDelay
// apart, before the activity is dead-lettered.
const (
	notFoundDeliveries = 3
	notFoundDelay      = 250 * time.Millisecond
)

// deliveries is how many times msg was delivered (1 when unknown).
func deliveries(msg queue.Delivery) uint64 {
	info, ok := msg.Info()
	if !ok {
		return 1
	}
	return info.Delivered
}

// handle settles one pulled message. It owns one slot and the taskWG count
// the pull loop added for it.
func (w *Worker) handle(q string, msg queue.Delivery) {
	defer w.taskWG.Done()
	// The slot is given back as soon as the task's process is done (the
	// report that follows needs none), or when handle returns.
	freeSlot := sync.OnceFunc(func() { w.release(1) })
	defer freeSlot()

	act, err := activity.Decode(msg.Data())
	if err == nil && act.Queue() != q {
		err = fmt.Errorf("activity for queue %q pulled from queue %q", act.Queue(), q)
	}
	if err != nil {
		w.deadLetter(w.log.With("queue", q), q, msg, "malformed activity: "+err.Error())
		return
	}
	id := act.ID()
	log := w.log.With("queue", q, "activity_id", id)
	ok, handedOff := w.claim(id)
	if !ok {
		// A redelivery of an activity this worker is already handling. Once
		// handed off the message is done with; before that, the first copy
		// settles it.
		log.Info("dropping redelivered activity already running here")
		if handedOff {
			_ = msg.Ack()
		}
		return
	}
	defer w.unclaim(id)

	switch {
	case act.ExecuteTask != nil:
		w.executeTask(log, q, msg, act.ExecuteTask, freeSlot)
	case act.RunCallback != nil:
		w.runCallback(log, q, msg, act.RunCallback)
	}
}

// deadLetter records msg on the dead-letter subject and terminates it. If the
// record cannot be written the message is Nak'd so that it is not lost.
func (w *Worker) deadLetter(log *slog.Logger, q string, msg queue.Delivery, reason string) {
	ctx, cancel := context.WithTimeout(w.hardCtx, 10*time.Second)
	defer cancel()
	if err := w.cfg.Queue.PublishDeadLetter(ctx, q, msg.Data(), reason); err != nil {
		log.Error("dead-letter activity failed; will retry", "reason", reason, "err", err)
		_ = msg.NakWithDelay(nakDelay)
		return
	}
	if err := msg.Term(); err != nil {
		log.Warn("term dead-lettered activity", "err", err)
	}
	log.Warn("activity dead-lettered", "reason", reason)
}

// keepAlive sends InProgress for msg every inProgress interval until the
// returned stop function is called; after stop returns it sends no more.
// A timer, not a goroutine: the …/run it covers is usually answered well
// before the first InProgress is due.
func (w *Worker) keepAlive(msg queue.Delivery) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(w.inProgress, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(w.inProgress)
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// executeTask hands the activity over to the executor (PATCH …/run), acks it,
// and supervises the task.
func (w *Worker) executeTask(log *slog.Logger, q string, msg queue.Delivery, et *activity.ExecuteTask, freeSlot func()) {
	log = log.With("ti_id", et.TI.ID, "try_number", et.TI.TryNumber)
	start := time.Now().UTC()

	if down, _, _ := w.api.state(); down {
		// Pulled just before the API was found unreachable. Give it back
		// only if the API does not come back soon: every give-back spends
		// one of the activity's JetStream deliveries, and a worker that
		// blinked (a slow answer on a busy machine) would spend them all.
		stop := w.keepAlive(msg)
		wctx, cancel := context.WithTimeout(w.taskCtx, w.runTimeout())
		err := w.waitAPI(wctx)
		cancel()
		stop()
		if err != nil {
			_ = msg.Nak()
			return
		}
	}
	stopKeepAlive := w.keepAlive(msg)
	rctx, cancel := context.WithTimeout(w.taskCtx, w.runTimeout())
	runSent := time.Now() // monotonic, unlike start
	rr, err := w.cfg.API.Run(rctx, et.Token, et.TI.ID, execution.RunRequest{
		Hostname:   w.cfg.Hostname,
		PID:        os.Getpid(),
		WorkerID:   w.cfg.ID,
		ActivityID: et.ID,
		StartDate:  start,
	})
	cancel()
	stopKeepAlive()
	if w.taskCtx.Err() == nil {
		w.noteAPI(err)
	}
	switch {
	case err == nil:
	case errors.Is(err, execution.ErrConflict):
		log.Info("activity dropped: task instance is not queued or runs elsewhere", "err", err)
		_ = msg.Ack()
		return
	case errors.Is(err, execution.ErrNotFound) && deliveries(msg) < notFoundDeliveries:
		// The record may not be visible yet on the executor that answered
		// (the activity is published while its record is stored): again
		// shortly.
		log.Info("task instance not found yet; activity will be redelivered", "delay", notFoundDelay)
		_ = msg.NakWithDelay(notFoundDelay)
		return
	case errors.Is(err, execution.ErrUnauthorized), errors.Is(err, execution.ErrForbidden),
		errors.Is(err, execution.ErrBadRequest), errors.Is(err, execution.ErrNotFound):
		// Permanent: retrying the same activity cannot succeed.
		w.deadLetter(log, q, msg, "run refused: "+err.Error())
		return
	default:
		if w.taskCtx.Err() != nil {
			_ = msg.Nak()
			return
		}
		if execution.Unreachable(err) {
			// This worker stops pulling until the API answers again;
			// another may start the task now.
			log.Warn("hand-off failed: execution API unreachable; activity given back", "err", err)
			_ = msg.Nak()
			return
		}
		log.Warn("hand-off failed; activity will be redelivered", "err", err, "delay", nakDelay)
		_ = msg.NakWithDelay(nakDelay)
		return
	}

	// The executor has the task running: from here its liveness is the
	// heartbeat. The ack is not waited for: were it lost, the redelivery
	// would be refused by …/run (409) and dropped, so the task need not
	// wait a round trip to start.
	if err := msg.Ack(); err != nil {
		log.Warn("ack activity", "err", err)
	}
	w.markHandedOff(et.ID)
	w.supervise(log, q, et, rr, start, runSent, freeSlot)
}

// runTimeout bounds one …/run call (with the client's retries): an
// executor that does not answer in that time is taken as unreachable.
func (w *Worker) runTimeout() time.Duration {
	return max(2*w.cfg.HeartbeatInterval, 10*time.Second)
}
