package executor

import (
	"fmt"
	"net/http"

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
	if err := decodeBody(w, r, e.cfg.MaxBody, &body); err != nil {
		e.writeError(w, r, err)
		return
	}
	if err := body.validate(); err != nil {
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
