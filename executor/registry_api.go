package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// The operators' view of the cluster: the worker registry (GET
// /api/v1/workers, POST /api/v1/workers/{id}/drain), the triggerers (GET
// /api/v1/triggerers) and the queues (GET /api/v1/queues). Workers and
// triggerers write their own heartbeats to KV buckets with a TTL; one whose
// heartbeat is older than Config.LostAfter is shown as lost until its entry
// expires, so a worker that died is seen dead, not silently dropped.

// routeRegistry adds the operators' live views through h (operator auth):
// the registry routes, and the watch of a task instance (watch.go).
func (e *Executor) routeRegistry(h func(string, http.HandlerFunc)) {
	h("GET /api/v1/task-instances/{id}/watch", e.handleWatch)
	h("GET /api/v1/workers", e.handleWorkers)
	h("POST /api/v1/workers/{id}/drain", e.handleDrainWorker)
	h("GET /api/v1/triggerers", e.handleTriggerers)
	h("GET /api/v1/queues", e.handleQueues)
}

// liveness is the state of a member whose last heartbeat was at.
func (e *Executor) liveness(at time.Time, now time.Time, state string) string {
	if now.Sub(at) > e.cfg.LostAfter {
		return activity.MemberLost
	}
	if state == "" {
		return activity.MemberLive
	}
	return state
}

// listWorkers returns the workers in the registry, sorted by id, with
// their state as the executor sees it: lost when silent for LostAfter,
// draining when a drain was asked for.
func (e *Executor) listWorkers(ctx context.Context) ([]activity.WorkerInfo, error) {
	ents, err := e.workers.Entries(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	out := []activity.WorkerInfo{}
	for key, val := range ents {
		id, drain, ok := queue.ParseWorkerKey(key)
		if !ok || drain {
			continue
		}
		var wi activity.WorkerInfo
		if err := json.Unmarshal(val, &wi); err != nil {
			e.log.Warn("undecodable worker registry entry", "worker_id", id, "err", err)
			continue
		}
		wi.ID = id
		if _, asked := ents[queue.DrainKey(id)]; asked && wi.State == activity.MemberLive {
			wi.State = activity.MemberDraining
		}
		wi.State = e.liveness(wi.LastHeartbeat, now, wi.State)
		out = append(out, wi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// handleWorkers is GET /api/v1/workers.
func (e *Executor) handleWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := e.listWorkers(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": ws})
}

// handleDrainWorker is POST /api/v1/workers/{id}/drain: the worker, watching its
// drain key, stops pulling and finishes its running tasks. 202 with the
// worker; 404 for a worker not in the registry.
func (e *Executor) handleDrainWorker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := queue.ValidWorkerID(id); err != nil {
		e.writeError(w, r, fmt.Errorf("worker %q: %w", id, ErrNotFound))
		return
	}
	ent, err := e.workers.Get(r.Context(), queue.WorkerKey(id))
	if err != nil {
		e.writeError(w, r, kvErr("worker "+id, err))
		return
	}
	var wi activity.WorkerInfo
	if err := json.Unmarshal(ent.Value(), &wi); err != nil {
		e.writeError(w, r, fmt.Errorf("decode worker %s: %w", id, err))
		return
	}
	now := e.now()
	if _, err := e.workers.Put(r.Context(), queue.DrainKey(id), []byte(now.Format(time.RFC3339Nano))); err != nil {
		e.writeError(w, r, fmt.Errorf("drain worker %s: %w", id, err))
		return
	}
	wi.ID = id
	if wi.State == activity.MemberLive {
		wi.State = activity.MemberDraining
	}
	wi.State = e.liveness(wi.LastHeartbeat, now, wi.State)
	e.log.Info("worker drain requested", "worker_id", id, "state", wi.State)
	writeJSON(w, http.StatusAccepted, wi)
}

// handleTriggerers is GET /api/v1/triggerers.
func (e *Executor) handleTriggerers(w http.ResponseWriter, r *http.Request) {
	ents, err := e.triggerers.Entries(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	now := e.now()
	out := []activity.TriggererInfo{}
	for key, val := range ents {
		var hb activity.TriggererHeartbeat
		if err := json.Unmarshal(val, &hb); err != nil {
			e.log.Warn("undecodable triggerer heartbeat", "triggerer_id", key, "err", err)
			continue
		}
		out = append(out, activity.TriggererInfo{ID: key, Hostname: hb.Hostname, Held: hb.Held,
			State: e.liveness(hb.At, now, ""), StartedAt: hb.StartedAt, LastHeartbeat: hb.At})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, map[string]any{"triggerers": out})
}

// queueStats counts, per queue, the cached records running and deferred and
// the tries that ended since since: finished (success, failed, skipped,
// removed, cancelled) and, of those, failed.
func (s *store) queueStats(since time.Time, into map[string]*activity.QueueInfo) {
	get := func(q string) *activity.QueueInfo {
		qi := into[q]
		if qi == nil {
			qi = &activity.QueueInfo{Name: q}
			into[q] = qi
		}
		return qi
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// The finished records are the cached ones: the most recently
	// finished, more than finish in a minute but at the cache's size.
	recs := make([]cachedRecord, 0, len(s.live)+len(s.done))
	for _, c := range s.live {
		recs = append(recs, c)
	}
	for _, el := range s.done {
		recs = append(recs, el.Value.(cachedRecord))
	}
	for _, c := range recs {
		ti := c.ti
		switch {
		case ti.State == activity.StateRunning:
			get(ti.Queue).Running++
		case ti.State == activity.StateDeferred:
			get(ti.Queue).Deferred++
		case ti.State.Terminal():
			qi := get(ti.Queue)
			if ti.EndDate != nil && !ti.EndDate.Before(since) {
				qi.FinishedLastMinute++
				if ti.State == activity.StateFailed {
					qi.FailedLastMinute++
				}
			}
		}
	}
}

// handleQueues is GET /api/v1/queues: every queue with a consumer, a record
// or a worker serving it; workers counts the live ones.
func (e *Executor) handleQueues(w http.ResponseWriter, r *http.Request) {
	pending, err := e.q.ActivityPending(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	workers, err := e.listWorkers(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	qs := map[string]*activity.QueueInfo{}
	e.store.queueStats(e.now().Add(-time.Minute), qs)
	get := func(q string) *activity.QueueInfo {
		if qs[q] == nil {
			qs[q] = &activity.QueueInfo{Name: q}
		}
		return qs[q]
	}
	for q, n := range pending {
		get(q).Pending = n
	}
	for q, n := range e.pools.waitingByQueue() {
		get(q).Waiting = n
	}
	for q, n := range e.pools.queueMaxRunning() {
		get(q).MaxRunning = n
	}
	for _, wi := range workers {
		if wi.State != activity.MemberLive {
			continue // a draining or lost worker serves nothing
		}
		for _, q := range wi.Queues {
			get(q).Workers++
		}
	}
	out := make([]activity.QueueInfo, 0, len(qs))
	for _, qi := range qs {
		out = append(out, *qi)
	}
	slices.SortFunc(out, func(a, b activity.QueueInfo) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}
