package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/taskwire/taskwire/dag"
)

// PutDag stores d as its DAG's new version (PUT /api/v1/dags/{dag_id}); a
// document equal to the current version changes nothing.
func (c *Client) PutDag(ctx context.Context, d *dag.DAG) (*dag.Record, error) {
	id, err := pathID("dag_id", d.DagID)
	if err != nil {
		return nil, err
	}
	var rec dag.Record
	if err := c.do(ctx, http.MethodPut, "/dags/"+id, nil, d, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Dag returns a DAG's record.
func (c *Client) Dag(ctx context.Context, dagID string) (*dag.Record, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	var rec dag.Record
	if err := c.do(ctx, http.MethodGet, "/dags/"+id, nil, nil, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Dags lists the DAGs with their latest runs.
func (c *Client) Dags(ctx context.Context) ([]dag.Summary, error) {
	var out struct {
		Dags []dag.Summary `json:"dags"`
	}
	if err := c.do(ctx, http.MethodGet, "/dags", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Dags, nil
}

// PauseDag pauses (or with paused false unpauses) a DAG.
func (c *Client) PauseDag(ctx context.Context, dagID string, paused bool) (*dag.Record, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	op := "/unpause"
	if paused {
		op = "/pause"
	}
	var rec dag.Record
	if err := c.do(ctx, http.MethodPost, "/dags/"+id+op, nil, nil, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// DeleteDag deletes a DAG and its runs.
func (c *Client) DeleteDag(ctx context.Context, dagID string) error {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, "/dags/"+id, nil, nil, nil)
}

// TriggerRun creates a run of a DAG (or returns the run of that run_id).
func (c *Client) TriggerRun(ctx context.Context, dagID string, req dag.TriggerRequest) (*dag.RunView, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	var v dag.RunView
	if err := c.do(ctx, http.MethodPost, "/dags/"+id+"/runs", nil, req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DagRun returns a run with its task instances.
func (c *Client) DagRun(ctx context.Context, dagID, runID string) (*dag.RunView, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	rid, err := pathID("run_id", runID)
	if err != nil {
		return nil, err
	}
	var v dag.RunView
	if err := c.do(ctx, http.MethodGet, "/dags/"+id+"/runs/"+rid, nil, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DagRuns lists a DAG's runs, the latest first (with their task
// instances when withTIs).
func (c *Client) DagRuns(ctx context.Context, dagID string, withTIs bool) ([]dag.RunView, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	var q url.Values
	if withTIs {
		q = url.Values{"task_instances": {"true"}}
	}
	var out struct {
		Runs []dag.RunView `json:"dag_runs"`
	}
	if err := c.do(ctx, http.MethodGet, "/dags/"+id+"/runs", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Runs, nil
}

// ClearRun clears task instances of a run so they run again.
func (c *Client) ClearRun(ctx context.Context, dagID, runID string, req dag.ClearRequest) (*dag.RunView, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	rid, err := pathID("run_id", runID)
	if err != nil {
		return nil, err
	}
	var v dag.RunView
	if err := c.do(ctx, http.MethodPost, "/dags/"+id+"/runs/"+rid+"/clear", nil, req, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// WatchRun calls fn with a run's view now and then again at each change
// (GET /dags/{dag_id}/runs/{run_id}/watch, event-driven on the executor),
// until the run has ended, and returns the last view. A stream that ends
// before the run has (the executor restarted) returns the last view seen
// and ErrWatchEnded; ErrNotFound when there is no such run.
func (c *Client) WatchRun(ctx context.Context, dagID, runID string, fn func(*dag.RunView)) (*dag.RunView, error) {
	id, err := pathID("dag_id", dagID)
	if err != nil {
		return nil, err
	}
	rid, err := pathID("run_id", runID)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, http.MethodGet, "/dags/"+id+"/runs/"+rid+"/watch", nil, nil, "application/x-ndjson")
	if err != nil {
		return nil, fmt.Errorf("watch run %s of %s: %w", runID, dagID, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<40))
	var last *dag.RunView
	for {
		var v dag.RunView
		if err := dec.Decode(&v); err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("watch run %s of %s: %w", runID, dagID, context.Cause(ctx))
			}
			if errors.Is(err, io.EOF) {
				return last, fmt.Errorf("watch run %s of %s: %w", runID, dagID, ErrWatchEnded)
			}
			return last, fmt.Errorf("watch run %s of %s: %w: %w", runID, dagID, ErrWatchEnded, err)
		}
		last = &v
		if fn != nil {
			fn(last)
		}
		if v.State.Finished() {
			return last, nil
		}
	}
}
