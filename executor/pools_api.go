package executor

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/taskwire/taskwire/activity"
)

// PoolBody is the body of PUT /api/v1/pools/{name}.
type PoolBody struct {
	// Slots is how many slots the pool's tasks may take at once; -1 means
	// no limit.
	Slots           *int   `json:"slots"`
	IncludeDeferred bool   `json:"include_deferred,omitempty"`
	Description     string `json:"description,omitempty"`
}

func (b *PoolBody) validate() error {
	if b.Slots == nil {
		return badRequest("slots is required (-1 for no limit)")
	}
	if s := *b.Slots; s < -1 || s > activity.PoolSlotsMax {
		return badRequest("slots %d out of range -1-%d", s, activity.PoolSlotsMax)
	}
	if len(b.Description) > 1000 {
		return badRequest("description of %d bytes exceeds 1000", len(b.Description))
	}
	return nil
}

func (e *Executor) routePools(h func(string, http.HandlerFunc)) {
	h("GET /api/v1/pools", e.handlePools)
	h("GET /api/v1/pools/{name}", e.handlePool)
	h("PUT /api/v1/pools/{name}", e.needStorage(e.handlePutPool))
	h("DELETE /api/v1/pools/{name}", e.handleDeletePool)
	h("PUT /api/v1/queues/{name}", e.needStorage(e.handlePutQueue))
}

// QueueBody is the body of PUT /api/v1/queues/{name}.
type QueueBody struct {
	// MaxRunning bounds the task instances of the queue admitted at once
	// (queued to a worker or running), across all workers; 0 removes the
	// bound.
	MaxRunning *int `json:"max_running"`
}

func (b *QueueBody) validate() error {
	if b.MaxRunning == nil {
		return badRequest("max_running is required (0 removes the bound)")
	}
	if n := *b.MaxRunning; n < 0 || n > activity.PoolSlotsMax {
		return badRequest("max_running %d out of range 0-%d", n, activity.PoolSlotsMax)
	}
	return nil
}

// handlePutQueue is PUT /api/v1/queues/{name}: the queue's max_running.
func (e *Executor) handlePutQueue(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := activity.ValidateQueue(name); err != nil {
		e.writeError(w, r, err)
		return
	}
	var body QueueBody
	if err := decodeValid(w, r, e.cfg.MaxBody, &body); err != nil {
		e.writeError(w, r, err)
		return
	}
	var err error
	if *body.MaxRunning == 0 {
		if err = e.pools.remove(r.Context(), queueLimitKey(name)); errors.Is(err, ErrNotFound) {
			err = nil
		}
	} else {
		err = e.pools.set(r.Context(), queueLimitKey(name), *body.MaxRunning, false, "")
	}
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Info("queue max_running set", "queue", name, "max_running", *body.MaxRunning)
	writeJSON(w, http.StatusOK, activity.QueueInfo{Name: name, MaxRunning: *body.MaxRunning, Waiting: e.pools.waitingByQueue()[name]})
}

// queueMaxRunning returns each queue's max_running.
func (p *pools) queueMaxRunning() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for key, c := range p.recs {
		if q, ok := strings.CutPrefix(key, queueKeyPrefix); ok && c.rec.Slots >= 0 {
			out[q] = c.rec.Slots
		}
	}
	return out
}

// Pools lists every pool with its counts, default_pool first.
func (e *Executor) Pools() []activity.Pool {
	names := e.pools.names()
	out := make([]activity.Pool, 0, len(names))
	for _, name := range names {
		if p, ok := e.pools.status(name); ok {
			out = append(out, p)
		}
	}
	return out
}

// AdmissionLatencies returns, and forgets, the admission latencies this
// executor measured: from its record watch (or its own write) showing a
// task give back its slots to the acknowledged publish of the next task
// it admitted in that slot, with their steps (at most the last 10,000).
// For the bench.
func (e *Executor) AdmissionLatencies() []AdmissionSample { return e.pools.admissionLatencies() }

func (e *Executor) handlePools(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"pools": e.Pools()})
}

func (e *Executor) handlePool(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := activity.ValidatePool(name); err != nil {
		e.writeError(w, r, err)
		return
	}
	p, ok := e.pools.status(name)
	if !ok {
		e.writeError(w, r, fmt.Errorf("pool %s: %w", name, ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (e *Executor) handlePutPool(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := activity.ValidatePool(name); err != nil {
		e.writeError(w, r, err)
		return
	}
	var body PoolBody
	if err := decodeValid(w, r, e.cfg.MaxBody, &body); err != nil {
		e.writeError(w, r, err)
		return
	}
	if err := e.pools.set(r.Context(), name, *body.Slots, body.IncludeDeferred, body.Description); err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Info("pool set", "pool", name, "slots", *body.Slots, "include_deferred", body.IncludeDeferred)
	p, _ := e.pools.status(name)
	// The watch may not have brought the write back yet: answer what was set.
	p.Slots, p.IncludeDeferred, p.Description = *body.Slots, body.IncludeDeferred, body.Description
	writeJSON(w, http.StatusOK, p)
}

func (e *Executor) handleDeletePool(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := activity.ValidatePool(name); err != nil {
		e.writeError(w, r, err)
		return
	}
	if err := e.pools.remove(r.Context(), name); err != nil {
		e.writeError(w, r, err)
		return
	}
	e.log.Info("pool deleted", "pool", name)
	w.WriteHeader(http.StatusNoContent)
}

// withAdmission returns ti with the reason it waits for admission, if it
// does (a copy: cached records are shared).
func (e *Executor) withAdmission(ti *activity.TaskInstance) *activity.TaskInstance {
	if ti == nil || ti.State != activity.StateQueued {
		return ti
	}
	if why := e.pools.waitingReason(ti); why != "" {
		c := *ti
		c.Reason = why
		return &c
	}
	return ti
}

// decodeValid decodes a settings body and validates it.
func decodeValid(w http.ResponseWriter, r *http.Request, max int64, body interface{ validate() error }) error {
	if err := decodeBody(w, r, max, body); err != nil {
		return err
	}
	return body.validate()
}
