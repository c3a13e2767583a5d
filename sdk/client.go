package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// RequestTimeoutDefault bounds a request to the worker whose context has no
// deadline.
const RequestTimeoutDefault = 2 * time.Minute

// client numbers requests, writes them, and matches the worker's responses
// to their callers. One goroutine, readLoop, reads; any number call.
type client struct {
	conn *protocol.Conn

	mu      sync.Mutex
	next    int
	pending map[int]chan result
	err     error // why readLoop stopped; set once
	done    chan struct{}
}

type result struct {
	resp protocol.Response
	err  error
}

func newClient(conn *protocol.Conn) *client {
	return &client{conn: conn, next: 1, pending: map[int]chan result{}, done: make(chan struct{})}
}

// readLoop delivers responses until the connection fails, then fails every
// pending call and calls lost with the reason.
func (c *client) readLoop(lost func(error)) {
	defer close(c.done)
	for {
		resp, err := c.conn.ReadResponse()
		if err != nil && (errors.Is(err, protocol.ErrMalformedFrame) || errors.Is(err, protocol.ErrUnknownMessageType)) && resp.ID > 0 {
			// The frame was read whole; only its caller is concerned.
			c.deliver(resp.ID, result{err: fmt.Errorf("response from the worker: %w", err)})
			continue
		}
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrWorkerGone, err)
			c.mu.Lock()
			c.err = err
			pending := c.pending
			c.pending = nil
			c.mu.Unlock()
			for _, ch := range pending {
				ch <- result{err: err}
			}
			lost(err)
			return
		}
		c.deliver(resp.ID, result{resp: resp})
	}
}

func (c *client) deliver(id int, r result) {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- r // buffered; a caller that gave up already removed its entry
	}
}

// call sends msg and waits for its response. An ErrorResponse is returned
// as an *APIError.
func (c *client) call(ctx context.Context, msg protocol.Message) (protocol.Message, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, RequestTimeoutDefault)
		defer cancel()
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	id := c.next
	c.next++
	c.pending[id] = ch
	c.mu.Unlock()

	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	if err := c.conn.WriteRequest(id, msg); err != nil {
		forget()
		return nil, fmt.Errorf("send to the worker: %w", err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if r.resp.Err != nil {
			return nil, &APIError{Code: r.resp.Err.Error, Detail: r.resp.Err.Detail}
		}
		if e, ok := r.resp.Msg.(protocol.ErrorResponse); ok {
			return nil, &APIError{Code: e.Error, Detail: e.Detail}
		}
		return r.resp.Msg, nil
	case <-ctx.Done():
		forget()
		return nil, context.Cause(ctx)
	}
}
