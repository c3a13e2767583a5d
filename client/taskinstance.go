package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
)

// WaitPollInterval is how often Wait reads the task instance.
const WaitPollInterval = 100 * time.Millisecond

// waitErrorBudget is how long Wait rides out temporary errors (an executor
// restarting) before returning the last one.
const waitErrorBudget = 10 * time.Second

// submitAttempts is how many times Submit sends one logical submit when
// the answer is lost or the executor is away: its Idempotency-Key makes a
// repeat return the first attempt's task instance.
const submitAttempts = 3

// Submit queues a task instance for spec (POST /activities) and returns it,
// queued. The server fills the ids spec leaves out (see
// activity.TaskSpec.WithDefaults); an invalid spec is ErrBadRequest.
//
// Submit sends a new Idempotency-Key with each call and tries again, with
// the same key, when the request fails in transit or the executor answers
// 5xx (up to 3 attempts): a retry never queues a second task instance.
func (c *Client) Submit(ctx context.Context, spec activity.TaskSpec) (*activity.TaskInstance, error) {
	return c.SubmitIdempotent(ctx, uuid.NewString(), spec)
}

// SubmitIdempotent is Submit under a key the caller chooses: the first
// submit with key queues the task instance, a later one with the same
// spec returns it, one with another spec is ErrConflict (for 24 hours).
func (c *Client) SubmitIdempotent(ctx context.Context, key string, spec activity.TaskSpec) (*activity.TaskInstance, error) {
	hdr := http.Header{"Idempotency-Key": {key}}
	var err error
	for attempt := 1; ; attempt++ {
		var ti activity.TaskInstance
		err = c.doHeader(ctx, http.MethodPost, "/activities", spec, &ti, hdr)
		if err == nil {
			return &ti, nil
		}
		var ae *APIError
		retryable := ctx.Err() == nil && (!errors.As(err, &ae) || ae.Status >= 500 && ae.Status != http.StatusInsufficientStorage)
		if !retryable || attempt == submitAttempts {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("submit to queue %s: %w", spec.Queue, err)
}

// Get returns the task instance id; ErrNotFound when there is none.
func (c *Client) Get(ctx context.Context, id string) (*activity.TaskInstance, error) {
	p, err := pathID("task instance id", id)
	if err == nil {
		var ti activity.TaskInstance
		if err = c.do(ctx, http.MethodGet, "/task-instances/"+p, nil, nil, &ti); err == nil {
			return &ti, nil
		}
	}
	return nil, fmt.Errorf("get task instance %s: %w", id, err)
}

// ListOpts filters List. The zero value lists the newest instances in any
// state, up to the server's default limit.
type ListOpts struct {
	// States keeps instances in one of these states; empty keeps all.
	States []activity.State
	Queue  string
	DagID  string
	// Limit caps how many instances are answered; 0 means the server's
	// default (100).
	Limit int
	// Cursor continues a list: the Next of the page before.
	Cursor string
}

// Page is a page of a list of task instances.
type Page struct {
	// TaskInstances: unfinished ones first (newest queued first), then
	// finished ones, most recently changed first.
	TaskInstances []*activity.TaskInstance
	// Total is how many match in all.
	Total int
	// Next is the Cursor of the next page; empty on the last.
	Next string
}

// List returns the first page of task instances matching opts and how
// many match in all (which may exceed the number returned); ListPage
// also gives the cursor of the next page.
func (c *Client) List(ctx context.Context, opts ListOpts) ([]*activity.TaskInstance, int, error) {
	p, err := c.ListPage(ctx, opts)
	return p.TaskInstances, p.Total, err
}

// ListPage returns a page of task instances matching opts.
func (c *Client) ListPage(ctx context.Context, opts ListOpts) (Page, error) {
	q := url.Values{}
	if len(opts.States) > 0 {
		names := make([]string, len(opts.States))
		for i, s := range opts.States {
			names[i] = string(s)
		}
		q.Set("state", strings.Join(names, ","))
	}
	if opts.Queue != "" {
		q.Set("queue", opts.Queue)
	}
	if opts.DagID != "" {
		q.Set("dag_id", opts.DagID)
	}
	if opts.Limit < 0 {
		return Page{}, fmt.Errorf("list task instances: %w: limit %d is negative", ErrBadRequest, opts.Limit)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	var out struct {
		TaskInstances []*activity.TaskInstance `json:"task_instances"`
		Total         int                      `json:"total"`
		Next          string                   `json:"next_cursor"`
	}
	if err := c.do(ctx, http.MethodGet, "/task-instances", q, nil, &out); err != nil {
		return Page{}, fmt.Errorf("list task instances: %w", err)
	}
	return Page{TaskInstances: out.TaskInstances, Total: out.Total, Next: out.Next}, nil
}

// Cancel cancels the task instance id and returns it; ErrConflict when it
// is already finished.
func (c *Client) Cancel(ctx context.Context, id string) (*activity.TaskInstance, error) {
	p, err := pathID("task instance id", id)
	if err == nil {
		var ti activity.TaskInstance
		if err = c.do(ctx, http.MethodPost, "/task-instances/"+p+"/cancel", nil, nil, &ti); err == nil {
			return &ti, nil
		}
	}
	return nil, fmt.Errorf("cancel task instance %s: %w", id, err)
}

// Retry starts a new try of the failed task instance id (POST …/retry) and
// returns it, queued again with its try number one higher. A task in any
// other state is ErrConflict; an unknown id ErrNotFound.
func (c *Client) Retry(ctx context.Context, id string) (*activity.TaskInstance, error) {
	p, err := pathID("task instance id", id)
	if err == nil {
		var ti activity.TaskInstance
		if err = c.do(ctx, http.MethodPost, "/task-instances/"+p+"/retry", nil, nil, &ti); err == nil {
			return &ti, nil
		}
	}
	return nil, fmt.Errorf("retry task instance %s: %w", id, err)
}

// Wait follows the task instance id until it is in a terminal state
// (activity.State.Terminal) and returns it: through Watch, so that every
// state is seen as it happens, and, should the stream fail or end early (an
// older executor, a restart), by polling every WaitPollInterval. onChange,
// when not nil, is called with the first record and with every one whose
// state or try number differs from the one before, the terminal one
// included; it runs on the caller's goroutine.
//
// Temporary errors (transport errors, 5xx) are ridden out for up to 10s; any
// other error, or ctx ending, ends the wait. A task that is not finished
// keeps running when the wait ends.
func (c *Client) Wait(ctx context.Context, id string, onChange func(*activity.TaskInstance)) (*activity.TaskInstance, error) {
	var last *activity.TaskInstance
	seen := func(ti *activity.TaskInstance) {
		if onChange != nil && (last == nil || ti.State != last.State || ti.TryNumber != last.TryNumber) {
			onChange(ti)
		}
		last = ti
	}
	if ti, err := c.Watch(ctx, id, seen); err == nil {
		return ti, nil
	}
	t := time.NewTicker(WaitPollInterval)
	defer t.Stop()
	var failingSince time.Time
	for {
		ti, err := c.Get(ctx, id)
		switch {
		case err == nil:
			failingSince = time.Time{}
			seen(ti)
			if ti.State.Terminal() {
				return ti, nil
			}
		case ctx.Err() != nil:
			return nil, fmt.Errorf("wait for task instance %s: %w", id, context.Cause(ctx))
		case !temporary(err):
			return nil, err
		case failingSince.IsZero():
			failingSince = time.Now()
		case time.Since(failingSince) > waitErrorBudget:
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for task instance %s: %w", id, context.Cause(ctx))
		case <-t.C:
		}
	}
}
