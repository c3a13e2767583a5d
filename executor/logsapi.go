package executor

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/taskwire/taskwire/queue"
)

// logFlushEvery is how many bytes of a log answer are written between
// flushes, so that a reader sees a big log arrive as it is read.
const logFlushEvery = 256 << 10

// handleLogs answers a task's log lines as NDJSON, streamed as they are
// read from the LOGS stream (the executor holds about a megabyte of a log
// at a time, whatever its size); tail=N answers the last N lines; with
// follow=true it streams until the task is finished and its lines are
// drained.
func (e *Executor) handleLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := e.store.get(r.Context(), id); err != nil {
		e.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	try, err := queryInt(q.Get("try"), "try")
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	tail, err := queryInt(q.Get("tail"), "tail")
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	follow := false
	switch s := strings.ToLower(q.Get("follow")); s {
	case "true", "1":
		follow = true
	case "", "false", "0":
	default:
		e.writeError(w, r, badRequest("follow %q: want true or false", truncateValue(s)))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	unflushed := 0
	wrote := false
	write := func(l queue.LogLine) error {
		b := append(withTry(l.Data, l.Try), '\n')
		wrote = true
		if _, err := w.Write(b); err != nil {
			return err
		}
		if unflushed += len(b); unflushed >= logFlushEvery && flusher != nil {
			flusher.Flush()
			unflushed = 0
		}
		return nil
	}
	if !follow {
		err := e.q.EachLog(r.Context(), id, try, queue.LogReadOpts{Tail: tail}, write)
		if err != nil && !wrote {
			e.writeError(w, r, err)
			return
		}
		if err != nil && r.Context().Err() == nil {
			// The status is sent: the answer ends short, and says why in
			// the executor's log.
			e.log.Warn("read logs", "ti_id", id, "err", err)
		}
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go e.endFollowWhenFinished(ctx, cancel, id)
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	err = e.q.FollowLogs(ctx, id, try, func(l queue.LogLine) error {
		if _, err := w.Write(append(withTry(l.Data, l.Try), '\n')); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		e.log.Debug("follow logs ended", "ti_id", id, "err", err)
	}
}

// endFollowWhenFinished cancels a followed log once the task is finished:
// the worker stores a try's logs before it reports the try's state.
func (e *Executor) endFollowWhenFinished(ctx context.Context, cancel context.CancelFunc, id string) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ti, err := e.store.get(ctx, id); err == nil && ti.State.Terminal() {
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			cancel()
			return
		}
	}
}

// queryInt parses an optional query parameter ≥ 0; "" is 0.
func queryInt(s, name string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest("%s %q: want a number ≥ 0", name, truncateValue(s))
	}
	return n, nil
}

// PurgeLogsRequest is the body of POST /api/v1/logs/purge: exactly one of
// its fields.
type PurgeLogsRequest struct {
	// OlderThan removes the lines stored longer ago than this Go duration
	// ("72h").
	OlderThan string `json:"older_than,omitempty"`
	// TaskInstanceID removes every line of this task instance.
	TaskInstanceID string `json:"task_instance_id,omitempty"`
	// All removes every line.
	All bool `json:"all,omitempty"`
}

// PurgeLogsResponse answers POST /api/v1/logs/purge.
type PurgeLogsResponse struct {
	// Purged is how many LOGS messages (batches of lines) were removed.
	Purged uint64 `json:"purged"`
}

func (e *Executor) handlePurgeLogs(w http.ResponseWriter, r *http.Request) {
	var req PurgeLogsRequest
	if err := decodeBody(w, r, e.cfg.MaxBody, &req); err != nil {
		e.writeError(w, r, err)
		return
	}
	var opts queue.PurgeLogsOpts
	if req.OlderThan != "" {
		d, err := time.ParseDuration(req.OlderThan)
		if err != nil || d <= 0 {
			e.writeError(w, r, badRequest("older_than %q: want a positive duration such as 72h", truncateValue(req.OlderThan)))
			return
		}
		opts.OlderThan = d
	}
	opts.TaskInstanceID, opts.All = req.TaskInstanceID, req.All
	n, err := e.q.PurgeLogs(r.Context(), opts)
	switch {
	case errors.Is(err, queue.ErrPurgeOpts):
		err = badRequest("give exactly one of older_than, task_instance_id, all")
	case errors.Is(err, queue.ErrInvalidToken):
		err = badRequest("task_instance_id %q is not a task instance id", truncateValue(req.TaskInstanceID))
	}
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Info("logs purged", "older_than", req.OlderThan, "ti_id", req.TaskInstanceID, "all", req.All, "messages", n)
	writeJSON(w, http.StatusOK, PurgeLogsResponse{Purged: n})
}
