package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// handleWatch is GET /api/v1/task-instances/{id}/watch: the record now, then
// every revision of it as it is written, as NDJSON, until it is finished
// (or the client goes). It reads a KV watch of the record's key, so every
// state is seen even when several follow within milliseconds (polling would
// miss them), and it costs the task's hot path nothing.
func (e *Executor) handleWatch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := e.store.get(r.Context(), id); err != nil {
		e.writeError(w, r, err)
		return
	}
	watcher, err := e.store.kv.Watch(r.Context(), id, queue.WatchOpts{})
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	defer func() { _ = watcher.Stop() }()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case ent, ok := <-watcher.Updates():
			if !ok {
				return
			}
			if ent.CaughtUp() {
				continue // the current value is in
			}
			if !ent.IsPut() {
				return // purged: nothing more will come
			}
			if _, err := w.Write(append(ent.Value(), '\n')); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			ti, err := activity.UnmarshalRecord(ent.Value())
			if err != nil {
				e.log.Warn("watch: undecodable record", "ti_id", id, "err", err)
				continue
			}
			if ti.State.Terminal() {
				return
			}
		}
	}
}

// handleWatchRun is GET /api/v1/dags/{dag_id}/runs/{run_id}/watch: the
// run's view now, then again each time it changes, as NDJSON, until the
// run has ended (or the client goes). It is event-driven: a task instance
// of the run written (by this executor or, through the record watch, by
// another) or the run record written makes it look again; views that did
// not change are not sent. Changes that follow within moments may come
// as one view.
func (e *Executor) handleWatchRun(w http.ResponseWriter, r *http.Request) {
	dagID, runID := r.PathValue("dag_id"), r.PathValue("run_id")
	if _, err := e.GetRun(r.Context(), dagID, runID); err != nil {
		e.writeError(w, r, err)
		return
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	unsubscribe := e.store.subscribe(func(ti *activity.TaskInstance) {
		if ti.DagRun != nil && ti.DagID == dagID && ti.DagRun.RunID == runID {
			poke()
		}
	})
	defer unsubscribe()
	ctx, cancel := context.WithCancel(r.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Its first call is the record as it is now: the first view.
		err := e.dags.store.Runs().Watch(ctx, queue.DagRunKey(dagID, runID), func([]byte, uint64) bool {
			poke()
			return true
		})
		if err != nil && ctx.Err() == nil {
			e.log.Warn("watch run", "dag_id", dagID, "run_id", runID, "err", err)
			cancel()
		}
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var last []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		run, err := e.GetRun(ctx, dagID, runID)
		if err != nil {
			return // deleted, or NATS away: the client sees the stream end
		}
		b, err := json.Marshal(e.runView(ctx, run))
		if err != nil {
			return
		}
		if !bytes.Equal(b, last) {
			if _, err := w.Write(append(b, '\n')); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			last = b
		}
		if run.State.Finished() {
			return
		}
	}
}
