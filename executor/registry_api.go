package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// triggererLostAfter: a triggerer whose heartbeat is older than this is
// shown as lost. It is the triggerers' own default dead-after
// (triggerer.DeadAfterDefault), past which the others take its triggers.
const triggererLostAfter = 15 * time.Second

// rateWindow is the window of the queues' finished and failed counts.
const rateWindow = time.Minute

// routeRegistry adds the operator views of workers, triggerers and queues
// to the public API; h wraps each handler in the operator auth.
func (e *Executor) routeRegistry(h func(string, http.HandlerFunc)) {
	h("GET /api/v1/workers", e.handleWorkers)
	h("GET /api/v1/triggerers", e.handleTriggerers)
	h("GET /api/v1/queues", e.handleQueues)
}

// workerInfo is a worker as the public API shows it.
type workerInfo struct {
	ID            string    `json:"id"`
	Hostname      string    `json:"hostname"`
	Version       string    `json:"version"`
	Queues        []string  `json:"queues"`
	Concurrency   int       `json:"concurrency"`
	FreeSlots     int       `json:"free_slots"`
	Running       int       `json:"running"`
	Runtimes      []string  `json:"runtimes"`
	State         string    `json:"state"` // live, draining or lost
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// listWorkers returns the workers known to the cluster. Workers do not
// register themselves yet, so none is known: the list is empty.
func (e *Executor) listWorkers(context.Context) ([]workerInfo, error) {
	return []workerInfo{}, nil
}

func (e *Executor) handleWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := e.listWorkers(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": ws})
}

// triggererInfo is a triggerer as the public API shows it.
type triggererInfo struct {
	ID            string    `json:"id"`
	Hostname      string    `json:"hostname"`
	Held          int       `json:"held"`
	State         string    `json:"state"` // live or lost
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// triggererHeartbeat is the entry a triggerer writes in the triggerers
// bucket (package triggerer).
type triggererHeartbeat struct {
	ID        string    `json:"id"`
	Hostname  string    `json:"hostname"`
	Held      int       `json:"held"`
	At        time.Time `json:"at"`
	StartedAt time.Time `json:"started_at"`
}

// listTriggerers reads the triggerers' heartbeats. A triggerer that stopped
// cleanly deleted its own; one whose heartbeat is older than
// triggererLostAfter is lost (the bucket forgets it after an hour).
func (e *Executor) listTriggerers(ctx context.Context) ([]triggererInfo, error) {
	out := []triggererInfo{}
	now := e.now()
	err := e.eachKV(ctx, e.q.KV(queue.BucketTriggerers), func(b []byte) {
		var hb triggererHeartbeat
		if json.Unmarshal(b, &hb) != nil || hb.ID == "" {
			return
		}
		t := triggererInfo{ID: hb.ID, Hostname: hb.Hostname, Held: hb.Held, State: "live",
			StartedAt: hb.StartedAt, LastHeartbeat: hb.At}
		if now.Sub(hb.At) > triggererLostAfter {
			t.State = "lost"
		}
		out = append(out, t)
	})
	if err != nil {
		return nil, fmt.Errorf("list triggerers: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (e *Executor) handleTriggerers(w http.ResponseWriter, r *http.Request) {
	ts, err := e.listTriggerers(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"triggerers": ts})
}

// queueInfo is a queue as the public API shows it.
type queueInfo struct {
	Name     string `json:"name"`
	Pending  int    `json:"pending"`
	Running  int    `json:"running"`
	Deferred int    `json:"deferred"`
	Workers  int    `json:"workers"`
	// FinishedLastMinute counts the task instances that reached a terminal
	// state in the last minute, the failed ones included.
	FinishedLastMinute int `json:"finished_last_minute"`
	FailedLastMinute   int `json:"failed_last_minute"`
}

// listQueues counts the executor's records per queue: pending (queued),
// running and deferred now, and finished and failed in the last minute.
// A queue is listed once a task was submitted to it or a worker serves it.
func (e *Executor) listQueues(ctx context.Context) ([]queueInfo, error) {
	byName := map[string]*queueInfo{}
	get := func(name string) *queueInfo {
		q := byName[name]
		if q == nil {
			q = &queueInfo{Name: name}
			byName[name] = q
		}
		return q
	}
	since := e.now().Add(-rateWindow)
	for _, st := range activity.States {
		e.store.each(st, func(ti *activity.TaskInstance) {
			q := get(ti.Queue)
			switch {
			case st == activity.StateQueued:
				q.Pending++
			case st == activity.StateRunning:
				q.Running++
			case st == activity.StateDeferred:
				q.Deferred++
			case st.Terminal() && ti.EndDate != nil && ti.EndDate.After(since):
				q.FinishedLastMinute++
				if st == activity.StateFailed {
					q.FailedLastMinute++
				}
			}
		})
	}
	ws, err := e.listWorkers(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range ws {
		if w.State == "lost" {
			continue
		}
		for _, name := range w.Queues {
			get(name).Workers++
		}
	}
	out := make([]queueInfo, 0, len(byName))
	for _, q := range byName {
		out = append(out, *q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (e *Executor) handleQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := e.listQueues(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": qs})
}
