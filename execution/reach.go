package execution

import (
	"context"
	"errors"
	"net/http"
)

// Health asks GET /execution/health, which needs no token: it succeeds when
// the executor answers. A worker that lost the Execution API probes it to
// know when it may pull again.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, "health", http.MethodGet, "/health", "", nil, nil)
	return err
}

// Unreachable reports whether err says the executor could not be reached
// (no connection, no answer in time, or a proxy's 502/503/504) rather than
// that it answered and refused. A cancelled ctx is not unreachable.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}
