package executor

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

func (e *Executor) routeExecution(mux router) {
	mux.HandleFunc("GET /execution/health", handleExecHealth)
	mux.HandleFunc("PATCH /execution/task-instances/{id}/run", e.handleRun)
	mux.HandleFunc("PATCH /execution/task-instances/{id}/state", e.handleState)
	mux.HandleFunc("GET /execution/task-instances/{id}/state", e.handleGetState)
	mux.HandleFunc("PUT /execution/task-instances/{id}/heartbeat", e.handleHeartbeat)
	mux.HandleFunc("PATCH /execution/task-instances/{id}/skip-downstream", e.handleSkipDownstream)
	mux.HandleFunc("GET /execution/connections/{id}", e.handleExecConnection)
	mux.HandleFunc("GET /execution/variables/{key}", e.handleExecVariable)
	mux.HandleFunc("PUT /execution/variables/{key}", e.handleExecVariable)
	mux.HandleFunc("DELETE /execution/variables/{key}", e.handleExecVariable)
	mux.HandleFunc("GET /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}", e.handleXCom)
	mux.HandleFunc("POST /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}", e.needStorage(e.handleXCom))
	mux.HandleFunc("DELETE /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}", e.handleXCom)
}

// execAuth checks an execution token (acting for tiID when not empty) and
// refreshes it through the Refreshed-API-Token header when half spent.
func (e *Executor) execAuth(w http.ResponseWriter, r *http.Request, tiID string) (*claims, error) {
	return e.authAs(w, r, tiID, false)
}

// authAs is execAuth, taking a trigger token too when trigger is set.
func (e *Executor) authAs(w http.ResponseWriter, r *http.Request, tiID string, trigger bool) (*claims, error) {
	raw := bearer(r)
	if raw == "" {
		return nil, fmt.Errorf("%w: missing bearer token", errUnauthorized)
	}
	c, err := e.tokens.verify(raw, audExecution, tiID)
	aud, ttl := audExecution, e.cfg.ExecutionTokenTTL
	if err != nil && trigger && errors.Is(err, ErrTokenInvalid) {
		if tc, terr := e.tokens.verify(raw, audTrigger, tiID); terr == nil || !errors.Is(terr, ErrTokenInvalid) {
			c, err, aud, ttl = tc, terr, audTrigger, e.cfg.WorkloadTokenTTL
		}
	}
	if err != nil {
		return nil, err
	}
	if c.ExpiresAt != nil && c.ExpiresAt.Sub(e.now()) < ttl/2 {
		if nt, err := e.tokens.issue(aud, c.Subject, c.Try, c.Activity, ttl); err == nil {
			w.Header().Set(execution.HeaderRefreshToken, nt)
		}
	}
	return c, nil
}

// isTrigger reports whether c is a trigger token's.
func (c *claims) isTrigger() bool { return slices.Contains(c.Audience, audTrigger) }

// handleExecHealth is GET /execution/health, as Airflow's: no token; a
// worker that lost the Execution API probes it to know when to pull again.
func handleExecHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, healthBody{Status: "healthy"})
}

// healthBody is GET /execution/health's answer.
type healthBody struct {
	Status string `json:"status"`
}

func (e *Executor) handleRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	raw := bearer(r)
	if raw == "" {
		e.writeError(w, r, fmt.Errorf("%w: missing bearer token", errUnauthorized))
		return
	}
	c, err := e.tokens.verify(raw, audWorkload, id)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	var req execution.RunRequest
	if err := decodeBody(w, r, e.cfg.MaxBody, &req); err != nil {
		e.writeError(w, r, err)
		return
	}
	if err := checkRun(&req); err != nil {
		e.writeError(w, r, err)
		return
	}
	started := false
	run := func(ti *activity.TaskInstance) error {
		started = false
		if ti.TryNumber != c.Try || (c.Activity != "" && ti.ActivityID != c.Activity) {
			if recordBehind(ti, c.Activity) {
				return fmt.Errorf("%w: activity %s is newer than the record's dispatch %s (%s)", errBehind, c.Activity, ti.ActivityID, ti.State)
			}
			return fmt.Errorf("%w: stale activity %s (try %d); current is %s (try %d)", ErrConflict, c.Activity, c.Try, ti.ActivityID, ti.TryNumber)
		}
		if ti.State == activity.StateRunning && ti.WorkerID == req.WorkerID && ti.PID == req.PID && ti.Hostname == req.Hostname {
			return errUnchanged // the same worker asking again
		}
		if ti.State != activity.StateQueued {
			return fmt.Errorf("%w: task instance is %s, not queued", ErrConflict, ti.State)
		}
		ti.Hostname, ti.PID, ti.WorkerID = req.Hostname, req.PID, req.WorkerID
		started = true
		return ti.SetState(activity.StateRunning, "", e.now())
	}
	ti, err := e.store.mutate(r.Context(), id, run)
	if errors.Is(err, errBehind) && e.store.awaitWrite(r.Context(), id) {
		// The activity overtook its record's write here (a resume
		// publishes the activity beside the write): the record once
		// written.
		ti, err = e.store.mutate(r.Context(), id, run)
	}
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	if started && ti.StartDate != nil {
		e.metrics.onStarted(ti, *ti.StartDate)
	}
	if started {
		e.clearEarlierXComs(r.Context(), ti)
	}
	tok, err := e.tokens.issue(audExecution, ti.ID, ti.TryNumber, "", e.cfg.ExecutionTokenTTL)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, execution.RunResponse{
		TI: ti.Key(), MaxTries: ti.MaxTries, ShouldRetry: ti.CanRetry(),
		NextMethod: ti.NextMethod, NextKwargs: ti.NextKwargs, ExecutionTimeout: remainingTimeout(ti),
		ZombieThreshold: activity.Duration(e.cfg.ZombieThreshold), Token: tok,
		RescheduleCount: ti.RescheduleCount, FirstRescheduleAt: ti.FirstRescheduleAt,
	})
}

// goPublish runs publish on a goroutine of its own and returns where its
// outcome is sent: a publish beside a record's write (store.mutateBeside),
// whose caller always receives it.
func goPublish(publish func() error) <-chan error {
	out := make(chan error, 1)
	go func() { out <- publish() }()
	return out
}

// errBehind answers a …/run whose activity is newer than the record it
// names: the write that made that dispatch (a resume, which publishes the
// activity beside it) is not stored yet, or not seen yet by this executor
// (made by another replica). A 404, so the worker has it redelivered
// shortly, as for a record being created.
var errBehind = fmt.Errorf("%w: dispatch not recorded yet", ErrNotFound)

// recordBehind reports whether activity (an id "<ti id>.<dispatch>") is a
// later dispatch of ti than the record's, ti not having ended: its write
// is still on the way.
func recordBehind(ti *activity.TaskInstance, activityID string) bool {
	if ti.State.Terminal() {
		return false
	}
	rest, ok := strings.CutPrefix(activityID, ti.ID+".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(rest)
	return err == nil && n > ti.Dispatch
}

// clearEarlierXComs removes the XComs a task instance's earlier run left
// (an earlier try's, or the same try's before a reschedule), as Airflow's
// …/run does before a task executes, so that a try sees and leaves only its
// own (a branch's skipmixin_key, a return value the try did not push). A
// run resumed from a deferral keeps them, as in Airflow. A first try that
// was never rescheduled has none to clear and costs nothing. The XComs go
// before the answer, so nothing the try pushes is removed.
func (e *Executor) clearEarlierXComs(ctx context.Context, ti *activity.TaskInstance) {
	if ti.NextMethod != "" || (ti.TryNumber <= 1 && ti.RescheduleCount == 0) {
		return
	}
	if err := e.xcom.PurgePrefix(ctx, xcomPrefix(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex)); err != nil {
		e.log.Warn("xcoms of an earlier run of this task instance not cleared", "ti_id", ti.ID, "try", ti.TryNumber, "err", err)
	}
}

// checkRun checks a …/run body.
func checkRun(req *execution.RunRequest) error {
	if req.Hostname == "" || req.WorkerID == "" {
		return badRequest("run needs hostname and worker_id")
	}
	return nil
}

// checkState checks a …/state body: a state a worker may set, and for
// deferred the trigger and where to resume.
func checkState(req *execution.StateRequest) error {
	switch req.State {
	case activity.StateSuccess, activity.StateFailed, activity.StateSkipped, activity.StateUpForRetry, activity.StateRemoved:
	case activity.StateUpForReschedule:
		if req.RescheduleDate == nil || req.RescheduleDate.IsZero() {
			return badRequest("up_for_reschedule needs a reschedule_date")
		}
	case activity.StateDeferred:
		if req.Trigger == nil || req.Trigger.Classpath == "" || req.NextMethod == "" {
			return badRequest("deferred needs a trigger with a classpath and a next_method")
		}
	default:
		return badRequest("a worker cannot set state %q", req.State)
	}
	return nil
}

// execRequest begins an Execution API request on task instance {id}:
// the task's token checked for it, the body decoded into a T and checked
// by check (when not nil). ok is false when it failed, and then it has
// written the error.
func execRequest[T any](e *Executor, w http.ResponseWriter, r *http.Request, check func(*T) error) (id string, c *claims, req *T, ok bool) {
	id = r.PathValue("id")
	c, err := e.execAuth(w, r, id)
	if err == nil {
		req = new(T)
		err = decodeBody(w, r, e.cfg.MaxBody, req)
	}
	if err == nil && check != nil {
		err = check(req)
	}
	if err != nil {
		e.writeError(w, r, err)
		return id, nil, nil, false
	}
	return id, c, req, true
}

func (e *Executor) handleState(w http.ResponseWriter, r *http.Request) {
	id, c, req, ok := execRequest(e, w, r, checkState)
	if !ok {
		return
	}
	if req.State == activity.StateSuccess {
		note, err := e.successSkipMixin(r.Context(), id, c.Try)
		if err != nil {
			e.writeError(w, r, err)
			return
		}
		if note != "" && req.Reason != "" {
			note = req.Reason + "; " + note
		}
		if note != "" {
			req.Reason = note
		}
	}
	var settled func()
	if req.State != activity.StateDeferred {
		// The try ends: the passes here may give its pool slots to the
		// next tasks while its end is written (pools.ending).
		if cur, ok := e.store.cached(id); ok && cur.ti.State == activity.StateRunning && cur.ti.TryNumber == c.Try {
			settled = e.pools.ending(cur.ti)
		}
	}
	var invalid error
	// A deferral's trigger goes out beside its record's write: the
	// triggerer's event that may overtake the write waits for it
	// (onEvent).
	pubCtx := context.WithoutCancel(r.Context())
	ti, triggered, err := e.store.mutateBeside(r.Context(), id, func(ti *activity.TaskInstance) error {
		invalid = nil
		if ti.TryNumber != c.Try {
			return fmt.Errorf("%w: token is for try %d, task instance is at try %d", ErrConflict, c.Try, ti.TryNumber)
		}
		if ti.State != activity.StateRunning {
			return &activity.TransitionError{From: ti.State, To: req.State}
		}
		if req.State == activity.StateDeferred {
			var err error
			invalid, err = e.deferTry(ti, req, e.now())
			return err
		}
		if req.State == activity.StateUpForReschedule {
			return e.rescheduleTry(ti, *req.RescheduleDate, req.Reason)
		}
		return e.endTry(ti, req.State, req.Reason)
	}, func(ti *activity.TaskInstance) <-chan error {
		if ti.State != activity.StateDeferred || ti.Trigger == nil {
			return nil
		}
		return goPublish(func() error { return e.publishTrigger(pubCtx, ti.Trigger) })
	})
	if settled != nil {
		settled()
	}
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Debug("task state", "ti_id", id, "try", ti.TryNumber, "state", ti.State, "reason", ti.Reason)
	e.metrics.onEnded(ti)
	if invalid != nil {
		// The task failed at defer time; the worker hears why.
		e.afterTry(r.Context(), ti)
		e.writeError(w, r, badRequest("defer: %v (the task failed)", invalid))
		return
	}
	if ti.State == activity.StateDeferred {
		var err error
		if triggered != nil {
			err = <-triggered
		} else {
			err = e.publishTrigger(pubCtx, ti.Trigger)
		}
		if err != nil {
			// The scan publishes it again (and a restart would).
			e.log.Error("publish trigger; the scan will try again", "ti_id", ti.ID, "trigger_id", ti.Trigger.ID, "err", err)
			e.unpublished.Store(ti.ID, unpublished{trigger: ti.Trigger})
		}
	}
	e.afterTry(r.Context(), ti)
	w.WriteHeader(http.StatusNoContent)
}

// successSkipMixin applies the skipmixin_key XCom of task instance id,
// running at try `try` and about to succeed (applySkipMixin). A record
// that is not running at that try skips nothing: its state request fails.
func (e *Executor) successSkipMixin(ctx context.Context, id string, try int) (string, error) {
	if e.dags == nil {
		return "", nil
	}
	var ti *activity.TaskInstance
	c, ok := e.store.cached(id)
	switch {
	case ok && (c.ti.DagRun == nil || c.ti.Entrypoint.Task == ""):
		return "", nil // fields a record never changes: no read
	case ok && c.ti.State == activity.StateRunning && c.ti.TryNumber == try:
		ti = c.ti
	default:
		cur, err := e.store.get(ctx, id)
		if err != nil {
			return "", err
		}
		ti = cur
	}
	if ti.DagRun == nil || ti.State != activity.StateRunning || ti.TryNumber != try {
		return "", nil
	}
	return e.applySkipMixin(ctx, ti)
}

func (e *Executor) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	id, c, req, ok := execRequest[execution.HeartbeatRequest](e, w, r, nil)
	if !ok {
		return
	}
	check := func(ti *activity.TaskInstance) error {
		switch {
		case ti.TryNumber != c.Try:
			return fmt.Errorf("%w: try %d is over; task instance is at try %d", ErrConflict, c.Try, ti.TryNumber)
		case ti.State != activity.StateRunning:
			return fmt.Errorf("%w: task instance is %s: %s", ErrConflict, ti.State, ti.Reason)
		case ti.WorkerID != req.WorkerID || ti.PID != req.PID || ti.Hostname != req.Hostname:
			return fmt.Errorf("%w: task instance runs on %s (worker %s)", ErrConflict, ti.Hostname, ti.WorkerID)
		}
		return nil
	}
	// A heartbeat whose record (as this executor last saw it) already has
	// a recent one is accepted without a write: the zombie check only asks
	// that heartbeat_at be younger than the threshold, and a write per
	// heartbeat of every running task (10,000 tasks waiting at once: 2,000
	// writes a second) would cost more than the tasks. A refusal, or a
	// record not cached, takes the authoritative path below.
	if cr, ok := e.store.cached(id); ok && check(cr.ti) == nil && cr.ti.HeartbeatAt != nil {
		if age := e.now().Sub(*cr.ti.HeartbeatAt); age >= 0 && age < e.heartbeatWriteAge() {
			e.metrics.onHeartbeat()
			// The worker times the kill of a try cut off from the API
			// from its last heartbeat that reached the record: tell it how
			// old the recorded one is (rounded up: never younger than the
			// zombie check will find it).
			w.Header().Set(execution.HeaderHeartbeatAge, strconv.FormatInt((age+time.Millisecond-1).Milliseconds(), 10))
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	_, err := e.store.mutate(r.Context(), id, func(ti *activity.TaskInstance) error {
		if err := check(ti); err != nil {
			return err
		}
		now := e.now()
		ti.HeartbeatAt = &now
		return nil
	})
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	e.metrics.onHeartbeat()
	w.WriteHeader(http.StatusNoContent)
}

// heartbeatWriteAge is the age of a task instance's recorded heartbeat
// below which a heartbeat is not written (handleHeartbeat): a quarter of
// the zombie threshold, so a live task's record is never older than that
// plus one heartbeat interval.
func (e *Executor) heartbeatWriteAge() time.Duration { return e.cfg.ZombieThreshold / 4 }

// kvKey encodes an arbitrary string as a KV key.
func kvKey(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// handleGetState answers a task its own state and try.
func (e *Executor) handleGetState(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := e.execAuth(w, r, id); err != nil {
		e.writeError(w, r, err)
		return
	}
	ti, err := e.store.get(r.Context(), id)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, execution.TaskStateResponse{State: ti.State, TryNumber: ti.TryNumber})
}

// tryAuth checks an execution token as execAuth does, and that its try is
// the task instance's current try and not over: a token of a try that
// ended (or of an earlier try) reads and writes nothing (403). With read
// set it takes a trigger token too: good while its task instance waits
// deferred, at its try, on its trigger.
func (e *Executor) tryAuth(w http.ResponseWriter, r *http.Request, read bool) (*claims, *activity.TaskInstance, error) {
	c, err := e.authAs(w, r, "", read)
	if err != nil {
		return nil, nil, err
	}
	over := func(own *activity.TaskInstance) error {
		if own.TryNumber != c.Try {
			return fmt.Errorf("%w: token is for try %d; task instance %s is at try %d", ErrTokenForeign, c.Try, own.ID, own.TryNumber)
		}
		if c.isTrigger() {
			if own.State != activity.StateDeferred || own.Trigger == nil || own.Trigger.ID != c.Activity {
				return fmt.Errorf("%w: a trigger token of task instance %s is good while it waits deferred on trigger %s; it is %s", ErrTokenForeign, own.ID, c.Activity, own.State)
			}
			return nil
		}
		if own.State.Terminal() || own.State == activity.StateUpForRetry || own.State == activity.StateUpForReschedule {
			return fmt.Errorf("%w: try %d of task instance %s is over (%s)", ErrTokenForeign, c.Try, own.ID, own.State)
		}
		return nil
	}
	own, err := e.store.identity(r.Context(), c.Subject)
	if err == nil && over(own) != nil {
		// The cache may lag another executor's write (a retry it started):
		// refuse only on the authoritative record.
		own, err = e.store.get(r.Context(), c.Subject)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: its task instance %s is gone", ErrTokenForeign, c.Subject)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := over(own); err != nil {
		return nil, nil, err
	}
	return c, own, nil
}

func (e *Executor) handleExecConnection(w http.ResponseWriter, r *http.Request) {
	if _, _, err := e.tryAuth(w, r, true); err != nil {
		e.writeError(w, r, err)
		return
	}
	conn, err := e.getConnection(r.Context(), r.PathValue("id"))
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conn)
}

func (e *Executor) handleExecVariable(w http.ResponseWriter, r *http.Request) {
	if _, _, err := e.tryAuth(w, r, r.Method == http.MethodGet); err != nil {
		e.writeError(w, r, err)
		return
	}
	e.serveVariable(w, r)
}

// xcomKey is the KV key of one XCom: its parts encoded and dot-joined.
func xcomKey(dag, run, task string, mapIndex int, key string) string {
	return xcomPrefix(dag, run, task, mapIndex) + "." + kvKey(key)
}

// xcomPrefix is the KV key prefix of one task instance's XComs.
func xcomPrefix(dag, run, task string, mapIndex int) string {
	return kvKey(dag) + "." + kvKey(run) + "." + kvKey(task) + ".m" + strconv.Itoa(mapIndex)
}

// handleXCom serves XComs. A task may read XComs of its own DAG run, and
// write or delete only its own.
func (e *Executor) handleXCom(w http.ResponseWriter, r *http.Request) {
	_, own, err := e.tryAuth(w, r, r.Method == http.MethodGet)
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	dag, run, task, key := r.PathValue("dag_id"), r.PathValue("run_id"), r.PathValue("task_id"), r.PathValue("key")
	mapIndex := -1
	if s := r.URL.Query().Get("map_index"); s != "" {
		if mapIndex, err = strconv.Atoi(s); err != nil {
			e.writeError(w, r, badRequest("map_index %q is not an integer", s))
			return
		}
	}
	if dag == "" || run == "" || task == "" || key == "" {
		e.writeError(w, r, badRequest("xcom path needs dag_id, run_id, task_id and key"))
		return
	}
	if own.DagID != dag || own.RunID != run {
		e.writeError(w, r, fmt.Errorf("%w: xcoms of another DAG run", ErrTokenForeign))
		return
	}
	if r.Method != http.MethodGet && (own.TaskID != task || own.MapIndex != mapIndex) {
		e.writeError(w, r, fmt.Errorf("%w: a task writes only its own xcoms", ErrTokenForeign))
		return
	}
	k := xcomKey(dag, run, task, mapIndex, key)
	switch r.Method {
	case http.MethodGet:
		ent, err := e.xcom.Get(r.Context(), k)
		if err != nil {
			if mapped, ok := e.mappedXComJSON(r.Context(), dag, run, task, mapIndex, key); ok {
				w.Header().Set("Content-Type", "application/json")
				_, _ = fmt.Fprintf(w, `{"key":%q,"value":%s}`, key, mapped)
				return
			}
			e.writeError(w, r, kvErr("xcom "+key, err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"key":%q,"value":%s}`, key, ent.Value())
	case http.MethodPost:
		var body execution.XComBody
		if err := decodeBody(w, r, e.cfg.MaxBody, &body); err != nil {
			e.writeError(w, r, err)
			return
		}
		data, err := jsonValue(body.Value)
		if err != nil {
			e.writeError(w, r, err)
			return
		}
		if _, err := e.xcom.Put(r.Context(), k, data); err != nil {
			e.writeError(w, r, fmt.Errorf("put xcom: %w", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if err := e.xcom.Delete(r.Context(), k); err != nil && !errors.Is(err, queue.ErrKeyNotFound) {
			e.writeError(w, r, fmt.Errorf("delete xcom: %w", err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// kvErr names a missing key as ErrNotFound.
func kvErr(what string, err error) error {
	if errors.Is(err, queue.ErrKeyNotFound) || errors.Is(err, queue.ErrKeyDeleted) || errors.Is(err, queue.ErrInvalidKey) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
