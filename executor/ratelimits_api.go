package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// RateLimitBody is the body of PUT /api/v1/limits/{key}.
type RateLimitBody struct {
	RPS        *float64 `json:"rps"`
	Concurrent int      `json:"concurrent,omitempty"`
}

func (b *RateLimitBody) validate() error {
	if b.RPS == nil {
		return badRequest("rps is required")
	}
	if r := *b.RPS; !(r > 0) || r > 1e6 || math.IsInf(r, 0) {
		return badRequest("rps %v out of range (0, 1000000]", r)
	}
	if b.Concurrent < 0 || b.Concurrent > activity.PoolSlotsMax {
		return badRequest("concurrent %d out of range 0-%d", b.Concurrent, activity.PoolSlotsMax)
	}
	return nil
}

func (e *Executor) routeRateLimits(h func(string, http.HandlerFunc)) {
	h("GET /api/v1/limits", e.handleRateLimits)
	h("PUT /api/v1/limits/{key}", e.needStorage(e.handlePutRateLimit))
	h("DELETE /api/v1/limits/{key}", e.handleDeleteRateLimit)
}

func (e *Executor) handleRateLimits(w http.ResponseWriter, r *http.Request) {
	kv := e.q.Bucket(queue.BucketRateLimits)
	keys, err := kv.Keys(r.Context())
	if err != nil {
		e.writeError(w, r, err)
		return
	}
	out := []activity.RateLimit{}
	for _, k := range keys {
		if len(k) < 6 || k[:6] != "limit." {
			continue
		}
		ent, err := kv.Get(r.Context(), k)
		if err != nil {
			continue
		}
		var l activity.RateLimit
		if json.Unmarshal(ent.Value(), &l) == nil {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	writeJSON(w, http.StatusOK, map[string]any{"limits": out})
}

func (e *Executor) handlePutRateLimit(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := activity.ValidateRateKey(key); err != nil {
		e.writeError(w, r, err)
		return
	}
	var body RateLimitBody
	if err := decodeValid(w, r, e.cfg.MaxBody, &body); err != nil {
		e.writeError(w, r, err)
		return
	}
	l := activity.RateLimit{Key: key, RPS: *body.RPS, Concurrent: body.Concurrent}
	b, _ := json.Marshal(l)
	if _, err := e.q.Bucket(queue.BucketRateLimits).Put(r.Context(), queue.RateLimitKey(key), b); err != nil {
		e.writeError(w, r, fmt.Errorf("put rate limit: %w", err))
		return
	}
	e.log.Info("rate limit set", "key", key, "rps", l.RPS, "concurrent", l.Concurrent)
	writeJSON(w, http.StatusOK, l)
}

func (e *Executor) handleDeleteRateLimit(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := activity.ValidateRateKey(key); err != nil {
		e.writeError(w, r, err)
		return
	}
	kv := e.q.Bucket(queue.BucketRateLimits)
	if _, err := kv.Get(r.Context(), queue.RateLimitKey(key)); errors.Is(err, queue.ErrKeyNotFound) {
		e.writeError(w, r, fmt.Errorf("rate limit %s: %w", key, ErrNotFound))
		return
	}
	if err := kv.Delete(r.Context(), queue.RateLimitKey(key)); err != nil {
		e.writeError(w, r, fmt.Errorf("delete rate limit: %w", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
