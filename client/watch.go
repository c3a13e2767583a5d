package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// Watch calls fn with the task instance id now and then with every revision
// of its record as the executor writes it (GET /task-instances/{id}/watch),
// until it is finished, and returns the last one. Every state is seen, even
// those that last milliseconds. A stream that ends before the task instance
// is finished (the executor restarted) returns the last record seen and
// ErrWatchEnded; ErrNotFound when there is no such task instance.
func (c *Client) Watch(ctx context.Context, id string, fn func(*activity.TaskInstance)) (*activity.TaskInstance, error) {
	p, err := pathID("task instance id", id)
	if err != nil {
		return nil, fmt.Errorf("watch task instance %s: %w", id, err)
	}
	resp, err := c.send(ctx, http.MethodGet, "/task-instances/"+p+"/watch", nil, nil, "application/x-ndjson")
	if err != nil {
		return nil, fmt.Errorf("watch task instance %s: %w", id, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<40))
	var last *activity.TaskInstance
	for {
		var ti activity.TaskInstance
		if err := dec.Decode(&ti); err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("watch task instance %s: %w", id, context.Cause(ctx))
			}
			if errors.Is(err, io.EOF) {
				return last, fmt.Errorf("watch task instance %s: %w", id, ErrWatchEnded)
			}
			return last, fmt.Errorf("watch task instance %s: %w: %w", id, ErrWatchEnded, err)
		}
		last = &ti
		if fn != nil {
			fn(last)
		}
		if ti.State.Terminal() {
			return last, nil
		}
	}
}

// ErrWatchEnded is returned by Watch when the stream ends before the task
// instance is finished.
var ErrWatchEnded = errors.New("watch ended before the task instance finished")
