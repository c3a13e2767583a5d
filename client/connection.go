package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// Connections returns every connection, sorted by id, passwords redacted
// ("***").
func (c *Client) Connections(ctx context.Context) ([]activity.Connection, error) {
	var out struct {
		Connections []activity.Connection `json:"connections"`
	}
	if err := c.do(ctx, http.MethodGet, "/connections", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return out.Connections, nil
}

// Connection returns the connection id, its password redacted; ErrNotFound
// when there is none.
func (c *Client) Connection(ctx context.Context, id string) (*activity.Connection, error) {
	p, err := pathID("connection id", id)
	if err == nil {
		var conn activity.Connection
		if err = c.do(ctx, http.MethodGet, "/connections/"+p, nil, nil, &conn); err == nil {
			return &conn, nil
		}
	}
	return nil, fmt.Errorf("get connection %s: %w", id, err)
}

// SetConnection creates or replaces the connection conn.ConnID (every field:
// one left empty is stored empty) and returns it, its password redacted.
func (c *Client) SetConnection(ctx context.Context, conn activity.Connection) (*activity.Connection, error) {
	p, err := pathID("connection id", conn.ConnID)
	if err == nil {
		var out activity.Connection
		if err = c.do(ctx, http.MethodPut, "/connections/"+p, nil, conn, &out); err == nil {
			return &out, nil
		}
	}
	return nil, fmt.Errorf("set connection %s: %w", conn.ConnID, err)
}

// DeleteConnection removes the connection id; deleting a missing connection
// is not an error.
func (c *Client) DeleteConnection(ctx context.Context, id string) error {
	p, err := pathID("connection id", id)
	if err == nil {
		err = c.do(ctx, http.MethodDelete, "/connections/"+p, nil, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("delete connection %s: %w", id, err)
	}
	return nil
}
