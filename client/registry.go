package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// Workers returns the workers in the registry, live, draining and lost
// (GET /workers), sorted by id.
func (c *Client) Workers(ctx context.Context) ([]activity.WorkerInfo, error) {
	var out struct {
		Workers []activity.WorkerInfo `json:"workers"`
	}
	if err := c.do(ctx, http.MethodGet, "/workers", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	return out.Workers, nil
}

// DrainWorker puts worker id in maintenance (POST /workers/{id}/drain): it
// stops pulling and finishes its running tasks. It returns the worker;
// ErrNotFound when no worker of that id is registered.
func (c *Client) DrainWorker(ctx context.Context, id string) (*activity.WorkerInfo, error) {
	p, err := pathID("worker id", id)
	if err == nil {
		var wi activity.WorkerInfo
		if err = c.do(ctx, http.MethodPost, "/workers/"+p+"/drain", nil, nil, &wi); err == nil {
			return &wi, nil
		}
	}
	return nil, fmt.Errorf("drain worker %s: %w", id, err)
}

// Triggerers returns the triggerers, live and lost (GET /triggerers).
func (c *Client) Triggerers(ctx context.Context) ([]activity.TriggererInfo, error) {
	var out struct {
		Triggerers []activity.TriggererInfo `json:"triggerers"`
	}
	if err := c.do(ctx, http.MethodGet, "/triggerers", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list triggerers: %w", err)
	}
	return out.Triggerers, nil
}

// Queues returns each queue's pending, running and deferred counts, the
// workers serving it and the last minute's throughput (GET /queues).
func (c *Client) Queues(ctx context.Context) ([]activity.QueueInfo, error) {
	var out struct {
		Queues []activity.QueueInfo `json:"queues"`
	}
	if err := c.do(ctx, http.MethodGet, "/queues", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	return out.Queues, nil
}
