package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// TaskFunc is a task's code. What it returns decides the try's outcome: see
// the package documentation.
type TaskFunc func(ctx context.Context, t *Task) error

// Task is the running task try, as its TaskFunc sees it. Its methods may be
// called from several goroutines.
type Task struct {
	startup protocol.StartupDetails
	client  *client
	logger  *slog.Logger

	mu       sync.Mutex
	deferred bool // DeferTask was accepted: the terminal message is sent
}

// TI returns the task instance identity of the try.
func (t *Task) TI() protocol.TaskInstance { return t.startup.TI }

// Context returns the run context: max tries, queue, entrypoint, params.
func (t *Task) Context() protocol.RunContext { return t.startup.Context }

// NextMethod returns the method the task resumes at after a deferral: ""
// on a first run. (A resume with FailMethod never reaches task code.)
func (t *Task) NextMethod() string { return t.startup.NextMethod }

// NextKwargs returns the keyword arguments for NextMethod, with the trigger's
// event under "event" (see Event).
func (t *Task) NextKwargs() map[string]any { return t.startup.NextKwargs }

// Event returns the payload of the trigger event the task resumed with,
// NextKwargs()["event"]: nil on a first run or when the trigger sent none.
// Maps are map[string]any and lists []any; numbers are int64 or float64,
// and since NextKwargs pass through JSON on their way, an integer may arrive
// as either: accept both.
func (t *Task) Event() any { return t.startup.NextKwargs["event"] }

// StartDate returns when the try started, as an RFC 3339 string.
func (t *Task) StartDate() string { return t.startup.StartDate }

// Logger returns the task's logger, which writes to the task's log.
func (t *Task) Logger() *slog.Logger { return t.logger }

// Connection returns the connection connID. It wraps ErrNotFound when there
// is none. The worker masks its password in the task's logs.
func (t *Task) Connection(ctx context.Context, connID string) (protocol.ConnectionResult, error) {
	m, err := t.client.call(ctx, protocol.GetConnection{ConnID: connID})
	if err != nil {
		return protocol.ConnectionResult{}, fmt.Errorf("get connection %s: %w", connID, err)
	}
	c, ok := m.(protocol.ConnectionResult)
	if !ok {
		return protocol.ConnectionResult{}, fmt.Errorf("get connection %s: %w", connID, unexpected(m))
	}
	return c, nil
}

// Variable returns the value of the variable key. It wraps ErrNotFound when
// there is none.
func (t *Task) Variable(ctx context.Context, key string) (string, error) {
	m, err := t.client.call(ctx, protocol.GetVariable{Key: key})
	if err != nil {
		return "", fmt.Errorf("get variable %s: %w", key, err)
	}
	v, ok := m.(protocol.VariableResult)
	if !ok {
		return "", fmt.Errorf("get variable %s: %w", key, unexpected(m))
	}
	return v.Value, nil
}

// SetVariable sets the variable key to value.
func (t *Task) SetVariable(ctx context.Context, key, value string) error {
	if err := t.ok(ctx, protocol.PutVariable{Key: key, Value: value}); err != nil {
		return fmt.Errorf("set variable %s: %w", key, err)
	}
	return nil
}

// XComPush stores value as the XCom key of this task try. value must be
// JSON-like (nil, bools, numbers, strings, slices, maps with string keys).
func (t *Task) XComPush(ctx context.Context, key string, value any) error {
	ti := t.startup.TI
	mi := ti.MapIndex
	msg := protocol.SetXCom{Key: key, Value: value, DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, MapIndex: &mi}
	if err := t.ok(ctx, msg); err != nil {
		return fmt.Errorf("push xcom %s: %w", key, err)
	}
	return nil
}

// XComPull returns the XCom key pushed by task taskID in the same DAG run.
// As in Airflow, an XCom that does not exist is nil, with no error. Integers
// come back as int64 and other numbers as float64, maps as map[string]any
// and lists as []any.
func (t *Task) XComPull(ctx context.Context, taskID, key string) (any, error) {
	ti := t.startup.TI
	m, err := t.client.call(ctx, protocol.GetXCom{Key: key, DagID: ti.DagID, RunID: ti.RunID, TaskID: taskID})
	if err != nil {
		return nil, fmt.Errorf("pull xcom %s of %s: %w", key, taskID, err)
	}
	x, ok := m.(protocol.XComResult)
	if !ok {
		return nil, fmt.Errorf("pull xcom %s of %s: %w", key, taskID, unexpected(m))
	}
	return x.Value, nil
}

// XComDelete deletes the XCom key of this task try.
func (t *Task) XComDelete(ctx context.Context, key string) error {
	ti := t.startup.TI
	mi := ti.MapIndex
	msg := protocol.DeleteXCom{Key: key, DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, MapIndex: &mi}
	if err := t.ok(ctx, msg); err != nil {
		return fmt.Errorf("delete xcom %s: %w", key, err)
	}
	return nil
}

// MaskSecret asks the worker to mask value in the task's logs from now on.
func (t *Task) MaskSecret(ctx context.Context, value string) error {
	if err := t.ok(ctx, protocol.MaskSecret{Value: value}); err != nil {
		return fmt.Errorf("mask secret: %w", err)
	}
	return nil
}

// Defer suspends the task until the trigger classpath, built with kwargs,
// fires (or timeout passes, when positive); then the task runs again with
// NextMethod nextMethod and NextKwargs nextKwargs plus the trigger's event
// under "event" (see Event), in the method registered for it with
// Runtime.RegisterMethod, else in the task's function. When the trigger
// fails or times out, the try fails, retried as any error while tries
// remain. nextMethod may not be FailMethod.
// Once the worker has accepted it, Defer returns an error wrapping
// ErrDeferred, which the TaskFunc should return; the try is over and
// nothing else it does is reported.
func (t *Task) Defer(ctx context.Context, classpath string, kwargs map[string]any, nextMethod string, nextKwargs map[string]any, timeout time.Duration) error {
	t.mu.Lock()
	done := t.deferred
	t.mu.Unlock()
	if done {
		return fmt.Errorf("defer to %s: %w already", classpath, ErrDeferred)
	}
	if nextMethod == FailMethod {
		return fmt.Errorf("defer to %s: next method %q is reserved", classpath, FailMethod)
	}
	msg := protocol.DeferTask{Classpath: classpath, TriggerKwargs: kwargs, NextMethod: nextMethod, NextKwargs: nextKwargs}
	if timeout > 0 {
		msg.TriggerTimeout = timeout.String()
	}
	if err := t.ok(ctx, msg); err != nil {
		return fmt.Errorf("defer to %s: %w", classpath, err)
	}
	t.mu.Lock()
	t.deferred = true
	t.mu.Unlock()
	return fmt.Errorf("%w: until %s fires, then %s", ErrDeferred, classpath, nextMethod)
}

func (t *Task) isDeferred() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.deferred
}

// ok sends msg and expects an OKResponse (or an empty response).
func (t *Task) ok(ctx context.Context, msg protocol.Message) error {
	m, err := t.client.call(ctx, msg)
	if err != nil {
		return err
	}
	switch m.(type) {
	case nil, protocol.OKResponse:
		return nil
	}
	return unexpected(m)
}

// errUnexpected is returned for an answer of the wrong type.
var errUnexpected = errors.New("unexpected answer from the worker")

func unexpected(m protocol.Message) error {
	if m == nil {
		return fmt.Errorf("%w: nothing", errUnexpected)
	}
	return fmt.Errorf("%w: %s", errUnexpected, m.MessageType())
}
