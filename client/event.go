package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/taskwire/taskwire/activity"
)

// SendEvent sends the external event name (POST /events/{name}) and returns
// it as the executor stored it. It fires every "event" trigger waiting on
// name that deferred at or before the event's SentAt; the executor keeps
// the last event of each name. payload is any value encoding to JSON
// (a json.RawMessage is sent as is); nil sends the event without one.
//
// An invalid name (see activity.ValidateEventName) is ErrBadRequest. The
// call is not retried: sending again records a new event.
func (c *Client) SendEvent(ctx context.Context, name string, payload any) (*activity.ExternalEvent, error) {
	p, err := pathID("event name", name)
	if err == nil {
		var ev activity.ExternalEvent
		if err = c.do(ctx, http.MethodPost, "/events/"+p, nil, payload, &ev); err == nil {
			return &ev, nil
		}
	}
	return nil, fmt.Errorf("send event %s: %w", name, err)
}
