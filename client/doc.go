// Package client is the Go client of taskwire's public API, the API the
// executor serves to operators under /api/v1 (the `executor` CLI is built on
// it).
//
// A Client queues task instances (Submit, the HTTP form of AIP-72's
// queue_activity), reads and lists them (Get, List), follows them to a final
// state (Wait), cancels them (Cancel), reads and follows their logs (Logs),
// sends the external events that deferred tasks wait on (SendEvent), and
// manages variables and connections.
//
//	c, err := client.New(client.Config{URL: "http://127.0.0.1:8080", Token: token})
//	ti, err := c.Submit(ctx, activity.TaskSpec{
//		Queue:      "default",
//		Entrypoint: activity.Entrypoint{Command: []string{"echo", "hello"}},
//	})
//	ti, err = c.Wait(ctx, ti.ID, nil)
//
// Every call takes a context. A call whose context has no deadline gets
// Config.RequestTimeout (default 30s), except Logs with follow, which streams
// until the task instance is finished or ctx is done.
//
// Error answers are *APIError values carrying the HTTP status and the
// server's {"error", "detail"} body; match them with errors.Is against
// ErrNotFound, ErrConflict, ErrBadRequest, ErrUnauthorized and ErrForbidden,
// or errors.As for the details. A Client is safe for concurrent use.
package client
