package client

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// PurgeLogsOpts chooses the log lines PurgeLogs removes: exactly one field.
type PurgeLogsOpts struct {
	// OlderThan removes the lines stored longer ago than this.
	OlderThan time.Duration
	// TaskInstanceID removes every line of this task instance.
	TaskInstanceID string
	// All removes every line.
	All bool
}

// PurgeLogs removes task log lines (POST /api/v1/logs/purge) and returns
// how many stored messages (batches of lines) were removed.
func (c *Client) PurgeLogs(ctx context.Context, opts PurgeLogsOpts) (uint64, error) {
	body := map[string]any{}
	if opts.OlderThan > 0 {
		body["older_than"] = opts.OlderThan.String()
	}
	if opts.TaskInstanceID != "" {
		body["task_instance_id"] = opts.TaskInstanceID
	}
	if opts.All {
		body["all"] = true
	}
	if len(body) != 1 {
		return 0, fmt.Errorf("purge logs: %w: give exactly one of older-than, task instance, all", ErrBadRequest)
	}
	var out struct {
		Purged uint64 `json:"purged"`
	}
	if err := c.do(ctx, http.MethodPost, "/logs/purge", nil, body, &out); err != nil {
		return 0, fmt.Errorf("purge logs: %w", err)
	}
	return out.Purged, nil
}
