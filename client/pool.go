package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// PoolSettings are what SetPool sets.
type PoolSettings struct {
	// Slots is how many slots the pool's tasks may take at once; -1 means
	// no limit.
	Slots           int    `json:"slots"`
	IncludeDeferred bool   `json:"include_deferred,omitempty"`
	Description     string `json:"description,omitempty"`
}

// Pools lists the pools with their counts, default_pool first (GET /pools).
func (c *Client) Pools(ctx context.Context) ([]activity.Pool, error) {
	var out struct {
		Pools []activity.Pool `json:"pools"`
	}
	if err := c.do(ctx, http.MethodGet, "/pools", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	return out.Pools, nil
}

// Pool returns one pool; ErrNotFound when there is none.
func (c *Client) Pool(ctx context.Context, name string) (*activity.Pool, error) {
	p, err := pathID("pool name", name)
	if err == nil {
		var out activity.Pool
		if err = c.do(ctx, http.MethodGet, "/pools/"+p, nil, nil, &out); err == nil {
			return &out, nil
		}
	}
	return nil, fmt.Errorf("get pool %s: %w", name, err)
}

// SetPool creates a pool or changes its settings (PUT /pools/{name}).
func (c *Client) SetPool(ctx context.Context, name string, s PoolSettings) (*activity.Pool, error) {
	p, err := pathID("pool name", name)
	if err == nil {
		var out activity.Pool
		if err = c.do(ctx, http.MethodPut, "/pools/"+p, nil, s, &out); err == nil {
			return &out, nil
		}
	}
	return nil, fmt.Errorf("set pool %s: %w", name, err)
}

// DeletePool deletes a pool; ErrNotFound when there is none.
func (c *Client) DeletePool(ctx context.Context, name string) error {
	p, err := pathID("pool name", name)
	if err == nil {
		err = c.do(ctx, http.MethodDelete, "/pools/"+p, nil, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("delete pool %s: %w", name, err)
	}
	return nil
}

// SetQueueMaxRunning bounds the task instances of queue admitted at once
// (queued to a worker or running) across all workers; 0 removes the
// bound (PUT /queues/{name}).
func (c *Client) SetQueueMaxRunning(ctx context.Context, queue string, n int) (*activity.QueueInfo, error) {
	p, err := pathID("queue", queue)
	if err == nil {
		var out activity.QueueInfo
		if err = c.do(ctx, http.MethodPut, "/queues/"+p, nil, map[string]int{"max_running": n}, &out); err == nil {
			return &out, nil
		}
	}
	return nil, fmt.Errorf("set queue %s max_running: %w", queue, err)
}

// RateLimits lists the rate limits of polling triggers (GET /limits).
func (c *Client) RateLimits(ctx context.Context) ([]activity.RateLimit, error) {
	var out struct {
		Limits []activity.RateLimit `json:"limits"`
	}
	if err := c.do(ctx, http.MethodGet, "/limits", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list rate limits: %w", err)
	}
	return out.Limits, nil
}

// SetRateLimit limits the requests of polling triggers under key to rps
// per second and, when concurrent > 0, that many in flight, across all
// triggerers (PUT /limits/{key}).
func (c *Client) SetRateLimit(ctx context.Context, key string, rps float64, concurrent int) (*activity.RateLimit, error) {
	p, err := pathID("rate key", key)
	if err == nil {
		var out activity.RateLimit
		body := map[string]any{"rps": rps, "concurrent": concurrent}
		if err = c.do(ctx, http.MethodPut, "/limits/"+p, nil, body, &out); err == nil {
			return &out, nil
		}
	}
	return nil, fmt.Errorf("set rate limit %s: %w", key, err)
}

// DeleteRateLimit removes key's rate limit; ErrNotFound when there is none.
func (c *Client) DeleteRateLimit(ctx context.Context, key string) error {
	p, err := pathID("rate key", key)
	if err == nil {
		err = c.do(ctx, http.MethodDelete, "/limits/"+p, nil, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("delete rate limit %s: %w", key, err)
	}
	return nil
}
