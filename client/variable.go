package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// Variables returns every variable, sorted by key.
func (c *Client) Variables(ctx context.Context) ([]activity.Variable, error) {
	var out struct {
		Variables []activity.Variable `json:"variables"`
	}
	if err := c.do(ctx, http.MethodGet, "/variables", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("list variables: %w", err)
	}
	return out.Variables, nil
}

// Variable returns the variable key; ErrNotFound when there is none.
func (c *Client) Variable(ctx context.Context, key string) (*activity.Variable, error) {
	p, err := pathID("variable key", key)
	if err == nil {
		var v activity.Variable
		if err = c.do(ctx, http.MethodGet, "/variables/"+p, nil, nil, &v); err == nil {
			return &v, nil
		}
	}
	return nil, fmt.Errorf("get variable %s: %w", key, err)
}

// SetVariable creates or replaces the variable key and returns it.
func (c *Client) SetVariable(ctx context.Context, key, value, description string) (*activity.Variable, error) {
	p, err := pathID("variable key", key)
	if err == nil {
		body := struct {
			Value       string `json:"value"`
			Description string `json:"description,omitempty"`
		}{value, description}
		var v activity.Variable
		if err = c.do(ctx, http.MethodPut, "/variables/"+p, nil, body, &v); err == nil {
			return &v, nil
		}
	}
	return nil, fmt.Errorf("set variable %s: %w", key, err)
}

// DeleteVariable removes the variable key; deleting a missing variable is
// not an error.
func (c *Client) DeleteVariable(ctx context.Context, key string) error {
	p, err := pathID("variable key", key)
	if err == nil {
		err = c.do(ctx, http.MethodDelete, "/variables/"+p, nil, nil, nil)
	}
	if err != nil {
		return fmt.Errorf("delete variable %s: %w", key, err)
	}
	return nil
}
