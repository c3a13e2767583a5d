package executor

import (
	"net/http"

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
