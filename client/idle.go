package client

import (
	"context"
	"fmt"
	"io"
	"time"
)

// ErrIdle is the cause of a streamed read cut because no data came for the
// client's RequestTimeout.
var ErrIdle = fmt.Errorf("no data from the executor")

// idleTimer cancels a streamed read's context when no data came for d.
type idleTimer struct {
	t *time.Timer
	d time.Duration
}

// withIdleTimeout returns ctx cancelled (cause ErrIdle, wrapped with the
// timeout) once the idle timer it returns is not reset for the client's
// RequestTimeout. A caller's own deadline, if any, still applies.
func (c *Client) withIdleTimeout(ctx context.Context) (context.Context, *idleTimer, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	d := c.timeout
	it := &idleTimer{d: d}
	it.t = time.AfterFunc(d, func() { cancel(fmt.Errorf("%w for %s", ErrIdle, d)) })
	return ctx, it, func() {
		it.t.Stop()
		cancel(context.Canceled)
	}
}

// reader resets the timer on every read that brought data.
func (it *idleTimer) reader(r io.Reader) io.Reader { return idleReader{r: r, it: it} }

type idleReader struct {
	r  io.Reader
	it *idleTimer
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.it.t.Reset(r.it.d)
	}
	return n, err
}
