package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/protocol"
)

// errHeartbeatConflict is the cause with which a task is killed when the
// executor refuses its heartbeat: it was cancelled, timed out or retried
// elsewhere, and the executor has already decided its state.
var errHeartbeatConflict = errors.New("heartbeat refused: task no longer running here")

// TimeoutError is the cause with which a task is killed when it passes its
// execution timeout.
type TimeoutError struct{ Timeout time.Duration }

func (e *TimeoutError) Error() string { return "execution timeout after " + e.Timeout.String() }

// outcome is how a try ended, as reported to the executor.
type outcome struct {
	state      activity.State
	reason     string
	trigger    *activity.Trigger
	nextMethod string
	nextKwargs map[string]any
	// rescheduleAt is when an up_for_reschedule try runs again.
	rescheduleAt *time.Time
	// killed is the cause when the worker killed the process before it
	// decided its outcome itself.
	killed error
}

func retry(format string, args ...any) outcome {
	return outcome{state: activity.StateUpForRetry, reason: fmt.Sprintf(format, args...)}
}

// job is one run of an entrypoint in a process: a task try or a callback.
type job struct {
	w     *Worker
	log   *slog.Logger
	tl    *taskLog
	rt    Runtime
	entry activity.Entrypoint
	ti    activity.TI
	env   []string // TASKWIRE_* variables of the try
	// startup is sent to SDK runtimes.
	startup protocol.StartupDetails
	// tc acts for the try; nil for callbacks, which get no API access.
	tc *execution.TaskClient
	// dagRun is the DAG run of the try, if any (dagrun.go).
	dagRun *activity.DagRun
	// pool is the queue's warm processes, nil in cold mode.
	pool *warmPool
	// zyg is the queue's prefork zygote, nil without prefork.
	zyg *zygote
	// shouldRetry says whether a failure of this try is retried (the
	// executor's answer to …/run), for runtimes that decide it themselves.
	shouldRetry bool
	// rescheduleCount and firstRescheduleAt: the try's reschedules so far
	// and the start of its first rescheduled run (…/run's answer).
	rescheduleCount   int
	firstRescheduleAt *time.Time
}

// run runs the job to its end; it kills the process when ctx ends. An
// entrypoint command runs directly (the command runtime); an entrypoint task
// runs in the queue's SDK runtime.
func (j *job) run(ctx context.Context) outcome {
	switch {
	case len(j.entry.Command) > 0:
		return j.runCommand(ctx)
	case j.rt.sdk() && j.pool != nil:
		return j.runWarm(ctx)
	case j.rt.sdk():
		return j.runSDK(ctx)
	}
	return outcome{state: activity.StateFailed, reason: fmt.Sprintf("task %q needs an SDK runtime, and this worker has none for its queue", j.entry.Task)}
}

// runCommand runs the entrypoint's command. A task try (not a callback) may
// defer through its defer file and, when resumed, learns where to continue
// from TASKWIRE_NEXT_METHOD, TASKWIRE_NEXT_KWARGS and TASKWIRE_EVENT: see
// the package documentation.
func (j *job) runCommand(ctx context.Context) outcome {
	var extra []string
	var deferFile string
	absent := false
	if j.tc != nil {
		renv, err := resumeEnv(j.startup.NextMethod, j.startup.NextKwargs)
		if err != nil {
			return outcome{state: activity.StateFailed, reason: fmt.Sprintf("resume command: %v", err)}
		}
		file, cleanup, err := j.w.deferFile(j.ti)
		if err != nil {
			return retry("create the defer files' directory: %v", err)
		}
		defer func() {
			// A file found absent is not removed (a system call per
			// task); one a leftover process wrote later goes with the
			// directory when the worker stops.
			if !absent {
				cleanup()
			}
		}()
		deferFile = file
		extra = append(renv, envDeferFile+"="+file)
	}
	p, err := j.w.startProcessVia(j.zyg, j.entry.Command, j.processEnv(false, extra), "", j.tl.output, j.ti.ID)
	if err != nil {
		return retry("start command: %v", err)
	}
	killed := p.waitOrKill(ctx)
	if killed != nil || deferFile == "" {
		return j.exitOutcome(p, killed)
	}
	if p.exitCode() != 0 {
		if _, err := os.Lstat(deferFile); err == nil {
			j.tl.worker("warning", "ignoring the defer file: the command ended with "+p.exitStatus())
		}
		return j.exitOutcome(p, nil)
	}
	out, err := readDeferFile(deferFile)
	switch {
	case errors.Is(err, errNoDeferFile):
		absent = true
		return j.returnValue(ctx, p, j.exitOutcome(p, nil))
	case err != nil:
		// A programming error of the command: retrying cannot fix it.
		reason := fmt.Sprintf("bad defer file (%s): %v", envDeferFile, err)
		j.tl.worker("error", reason)
		return outcome{state: activity.StateFailed, reason: reason}
	}
	j.tl.worker("info", fmt.Sprintf("deferred on trigger %s; will resume at %s", out.trigger.Classpath, out.nextMethod))
	return out
}

// exitOutcome decides a try by its process's exit.
func (j *job) exitOutcome(p *proc, killed error) outcome {
	status := p.exitStatus()
	if killed != nil {
		return outcome{killed: killed}
	}
	if p.exitCode() == 0 {
		return outcome{state: activity.StateSuccess}
	}
	j.tl.worker("error", status)
	return retry("%s", status)
}

// processEnv is the environment of the job's process: the worker's own
// without its TASKWIRE_* configuration (credentials stay with the worker),
// then the try's variables, then the SDK runtime's, then extra, then the
// entrypoint's.
func (j *job) processEnv(sdk bool, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASKWIRE_") {
			env = append(env, kv)
		}
	}
	env = append(env, j.env...)
	if sdk {
		for k, v := range j.rt.Env {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, extra...)
	for k, v := range j.entry.Env {
		env = append(env, k+"="+v)
	}
	return env
}

func tiEnv(ti activity.TI, q string) []string {
	return []string{
		"TASKWIRE_TI_ID=" + ti.ID,
		"TASKWIRE_DAG_ID=" + ti.DagID,
		"TASKWIRE_TASK_ID=" + ti.TaskID,
		"TASKWIRE_RUN_ID=" + ti.RunID,
		"TASKWIRE_MAP_INDEX=" + strconv.Itoa(ti.MapIndex),
		"TASKWIRE_TRY_NUMBER=" + strconv.Itoa(ti.TryNumber),
		"TASKWIRE_QUEUE=" + q,
	}
}

// supervise runs a handed-off try: heartbeats it, enforces its timeout,
// ships its logs and reports its final state.
// runSent is when the …/run was sent, on the monotonic clock.
func (w *Worker) supervise(log *slog.Logger, q string, et *activity.ExecuteTask, rr execution.RunResponse, start, runSent time.Time, freeSlot func()) {
	w.running.Add(1)
	defer w.running.Add(-1)

	ti := rr.TI
	if ti.ID == "" {
		ti = et.TI
	}
	tc := w.cfg.API.Task(ti.ID, rr.Token)
	tl := newTaskLog(w.cfg.Queue, ti.ID, ti.TryNumber, log)

	ctx, cancel := context.WithCancelCause(w.taskCtx)
	defer cancel(nil)
	timeout := rr.ExecutionTimeout.D()
	if timeout <= 0 {
		timeout = et.ExecutionTimeout.D()
	}
	if timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, timeout, &TimeoutError{Timeout: timeout})
		defer cancelT()
	}
	nextMethod, nextKwargs := rr.NextMethod, rr.NextKwargs
	if nextMethod == "" {
		nextMethod, nextKwargs = et.NextMethod, et.NextKwargs
	}
	if nextMethod == failMethod {
		w.failResumed(log, tc, tl, ti, triggerFailure(nextKwargs))
		return
	}
	params, _ := json.Marshal(et.Params)
	if et.Params == nil {
		params = []byte("{}")
	}
	j := &job{
		w: w, log: log, tl: tl, rt: w.cfg.Runtimes[q], entry: et.Entrypoint, ti: ti, tc: tc, pool: w.pools[q], zyg: w.zygotes[q],
		env: append(append(tiEnv(ti, q),
			"TASKWIRE_MAX_TRIES="+strconv.Itoa(rr.MaxTries),
			"TASKWIRE_PARAMS="+string(params)), dagRunEnv(et.DagRun)...),
		dagRun: et.DagRun, shouldRetry: rr.ShouldRetry, rescheduleCount: rr.RescheduleCount, firstRescheduleAt: rr.FirstRescheduleAt,
		startup: protocol.StartupDetails{
			Type: protocol.TypeStartupDetails,
			TI: protocol.TaskInstance{ID: ti.ID, DagID: ti.DagID, TaskID: ti.TaskID, RunID: ti.RunID,
				MapIndex: ti.MapIndex, TryNumber: ti.TryNumber},
			Context: protocol.RunContext{MaxTries: rr.MaxTries, Queue: q, Entrypoint: et.Entrypoint.Task, Params: et.Params,
				DagRun: protocolDagRun(ti.DagID, et.DagRun)},
			NextMethod: nextMethod,
			NextKwargs: nextKwargs,
			StartDate:  start.Format(time.RFC3339Nano),
		},
	}

	// The try dies before the executor may call it a zombie: killed when
	// no heartbeat (nor the …/run, sent at start) reached the executor for
	// the limit (see apireach.go).
	threshold := rr.ZombieThreshold.D()
	if threshold <= 0 {
		threshold = zombieThresholdAssumed
	}
	limit, grace := w.apiLimit(log, threshold)
	watchdog := time.AfterFunc(limit-time.Since(runSent), func() {
		ue := &APIUnreachableError{Limit: limit, Threshold: threshold, Grace: grace}
		w.noteAPI(ue) // stop pulling, if no failed call said so yet
		cancel(ue)
	})

	var conflict atomic.Bool
	hbStop := w.heartbeat(ctx, log, tc, func() {
		conflict.Store(true)
		cancel(errHeartbeatConflict)
	}, func(sent time.Time) {
		watchdog.Reset(limit - time.Since(sent))
	}, min(max(2*w.cfg.HeartbeatInterval, 10*time.Second), max(w.cfg.HeartbeatInterval, limit/3)))

	log.Info("task started", "hostname", w.cfg.Hostname)
	qm := w.qm[q]
	if qm != nil {
		qm.started.Inc()
	}
	tl.worker("info", fmt.Sprintf("starting try %d on host %s", ti.TryNumber, w.cfg.Hostname))
	out := j.runSafely(ctx)
	freeSlot()
	hbStop()
	watchdog.Stop()

	if out.killed != nil {
		var te *TimeoutError
		var ue *APIUnreachableError
		switch {
		case errors.Is(out.killed, errHeartbeatConflict):
			tl.worker("error", "killed: "+errHeartbeatConflict.Error())
		case errors.As(out.killed, &ue):
			log.Warn("task killed: its heartbeats could not reach the Execution API", "limit", ue.Limit, "zombie_threshold", ue.Threshold)
			tl.worker("error", "killed: "+ue.Error())
			out = retry("killed: %v", ue)
		case errors.As(out.killed, &te):
			tl.worker("error", "killed: execution timeout")
			out = retry("%s", te.Error())
		case errors.Is(out.killed, errShutdown):
			tl.worker("warning", "killed: worker shutting down")
			out = retry("worker shutting down")
		default:
			tl.worker("error", "killed: "+out.killed.Error())
			out = retry("killed: %v", out.killed)
		}
	}
	if conflict.Load() {
		// The executor already decided this try; report nothing.
		w.closeLog(log, tl)
		log.Warn("task killed: heartbeat refused by the executor")
		return
	}
	// A task's error may carry a secret it read: mask it before it is
	// logged or stored as the try's reason.
	out.reason = tl.maskString(out.reason)
	if qm != nil {
		qm.duration.Observe(time.Since(start).Seconds())
		if c := qm.finished[out.state]; c != nil {
			c.Inc()
		}
	}
	tl.worker("info", fmt.Sprintf("try %d finished: %s", ti.TryNumber, describe(out)))
	if out.state == activity.StateDeferred || out.state == activity.StateUpForReschedule {
		// The try pauses, it does not end: its lines go out before the
		// report, and their acknowledgement is awaited after it (the
		// resume is a trigger's round trip away), not before: one
		// JetStream round trip less on the way to the trigger.
		tl.flush()
		defer w.closeLog(log, tl)
	} else {
		w.closeLog(log, tl)
	}
	w.report(log, tc, out)
}

// failResumed ends a try that the executor resumed with __fail__ (its
// trigger failed or timed out) without starting a process: the failure is
// the task's, so it is reported up_for_retry with the trigger's error, and
// the executor fails the task when no tries remain.
func (w *Worker) failResumed(log *slog.Logger, tc *execution.TaskClient, tl *taskLog, ti activity.TI, reason string) {
	log.Info("task resumed after its trigger failed: not starting it", "reason", reason)
	tl.worker("error", fmt.Sprintf("try %d resumed after its trigger failed: %s", ti.TryNumber, reason))
	out := outcome{state: activity.StateUpForRetry, reason: reason}
	tl.worker("info", fmt.Sprintf("try %d finished: %s", ti.TryNumber, describe(out)))
	w.closeLog(log, tl)
	w.report(log, tc, out)
}

// runSafely runs j, turning a panic of the worker's own code into a failure
// carrying the stack.
func (j *job) runSafely(ctx context.Context) (out outcome) {
	defer func() {
		if r := recover(); r != nil {
			out = outcome{state: activity.StateFailed, reason: fmt.Sprintf("worker panic: %v\n%s", r, debug.Stack())}
		}
	}()
	return j.run(ctx)
}

func describe(out outcome) string {
	if out.reason == "" {
		return string(out.state)
	}
	return string(out.state) + " (" + out.reason + ")"
}

func (w *Worker) closeLog(log *slog.Logger, tl *taskLog) {
	ctx, cancel := context.WithTimeout(w.hardCtx, 10*time.Second)
	defer cancel()
	if err := tl.close(ctx); err != nil {
		log.Warn("flush task logs", "err", err)
	}
}

// heartbeat tells the executor every HeartbeatInterval that the try is alive
// until ctx ends or the returned stop is called (it returns once no
// heartbeat is under way); onConflict is called (once) when the executor
// refuses. onBeat is called, for each accepted heartbeat, with the time it
// was sent, less the age of the executor's recorded heartbeat when it
// accepted this one without a write (execution.HeaderHeartbeatAge). One
// heartbeat waits at most timeout: a third of the try's limit without
// one (see apireach.go), so that a worker that lost the API knows it,
// and stops pulling, well before it must kill the try. The beats run on
// a timer, as a ticker's would (one due while a slow one was under way is
// skipped): a try that ends before its first beat costs no goroutine.
func (w *Worker) heartbeat(ctx context.Context, log *slog.Logger, tc *execution.TaskClient, onConflict func(), onBeat func(sent time.Time), timeout time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	every := w.cfg.HeartbeatInterval
	req := execution.HeartbeatRequest{Hostname: w.cfg.Hostname, PID: os.Getpid(), WorkerID: w.cfg.ID}
	var (
		mu   sync.Mutex // held by a beat under way
		done bool
		t    *time.Timer
	)
	due := time.Now().Add(every)
	beat := func() (again bool) {
		hctx, hcancel := context.WithTimeout(ctx, timeout)
		sent := time.Now()
		age, err := tc.HeartbeatRecorded(hctx, req)
		hcancel()
		if ctx.Err() == nil {
			w.noteAPI(err)
		}
		switch {
		case err == nil:
			// One the executor did not write leaves the record's
			// heartbeat_at age older than when this one was handled, so
			// no later than sent − age: the watchdog counts from there.
			onBeat(sent.Add(-age))
			if w.cfg.Metrics != nil {
				w.cfg.Metrics.heartbeats.Inc()
			}
		case errors.Is(err, execution.ErrConflict):
			onConflict()
			return false
		case ctx.Err() != nil:
			return false
		default:
			log.Warn("heartbeat failed", "err", err)
		}
		return true
	}
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if done || ctx.Err() != nil || !beat() {
			done = true
			return
		}
		now := time.Now()
		for due = due.Add(every); !due.After(now); due = due.Add(every) {
		}
		t.Reset(due.Sub(now))
	})
	return func() {
		cancel() // a beat under way returns
		mu.Lock()
		defer mu.Unlock()
		done = true
		t.Stop()
	}
}

// report sends the try's final state. A refusal (409) is logged, not retried:
// the executor has already moved the task on.
func (w *Worker) report(log *slog.Logger, tc *execution.TaskClient, out outcome) {
	ctx, cancel := context.WithTimeout(w.hardCtx, ReportTimeoutDefault)
	defer cancel()
	err := tc.State(ctx, execution.StateRequest{
		State:          out.state,
		EndDate:        time.Now().UTC(),
		Reason:         out.reason,
		Trigger:        out.trigger,
		NextMethod:     out.nextMethod,
		NextKwargs:     out.nextKwargs,
		RescheduleDate: out.rescheduleAt,
	})
	switch {
	case err == nil:
		log.Info("task finished", "state", out.state, "reason", out.reason)
	case errors.Is(err, execution.ErrConflict):
		log.Warn("final state refused by the executor", "state", out.state, "err", err)
	default:
		log.Error("report final state", "state", out.state, "reason", out.reason, "err", err)
	}
}
