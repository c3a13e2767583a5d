// Command gotasks is a task runtime built with the Go SDK: the worker starts
// it per task try (--runtime 'go=gotasks --comm {comm_addr} --logs
// {logs_addr}'), and it runs the task the try names.
//
// Tasks: noop (succeeds), fail (returns an error), push (pushes XCom "value"
// = 42, after params.delay seconds when given), pull (pulls "value" from task push in the same run; fails unless it
// is 42), read_config (reads variable "greeting" and connection "db" and
// pushes them), leak_secrets (prints the password of connection "db", its
// extra field "api_token" and variable "service_api_key" to its log, stdout
// and stderr, then fails with the password in its error: the worker masks
// them all as "***"), sleep (sleeps 60s, or params.seconds, until cancelled) and
// panic.
//
// Deferring tasks, which free their worker slot while they wait:
//
//   - wait defers on a "timedelta" trigger of params.seconds (default 1),
//     then resumes in "resume".
//   - wait_event defers on an "event" trigger for the external event
//     params.name (required), with an optional trigger timeout of
//     params.timeout seconds, then resumes in "resume".
//   - wait_http defers on an "http" trigger polling params.url (required)
//     every 50ms, until its body contains params.contains when set, then
//     resumes in "resume".
//   - wait_twice defers twice on "timedelta" triggers of params.seconds
//     (default 0.2), resuming in "again" each time, and pushes XCom
//     "rounds" = 2.
//
// Their shared "resume" method logs the trigger's event and pushes it as
// XCom "event".
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/taskwire/taskwire/sdk"
)

func main() {
	r := sdk.New()
	r.Register("noop", noop)
	r.Register("fail", fail)
	r.Register("push", push)
	r.Register("pull", pull)
	r.Register("read_config", readConfig)
	r.Register("leak_secrets", leakSecrets)
	r.Register("sleep", sleep)
	r.Register("panic", panicky)
	r.Register("wait", wait)
	r.Register("wait_event", waitEvent)
	r.Register("wait_http", waitHTTP)
	r.Register("wait_twice", waitTwice)
	r.Register("extract", extract)
	r.RegisterMethod("extract", "extracted", extracted)
	for _, task := range []string{"wait", "wait_event", "wait_http"} {
		r.RegisterMethod(task, "resume", resume)
	}
	r.RegisterMethod("wait_twice", "again", again)
	r.Main()
}

func noop(ctx context.Context, t *sdk.Task) error {
	t.Logger().Info("nothing to do")
	return nil
}

func fail(ctx context.Context, t *sdk.Task) error {
	return errors.New("failing on purpose")
}

func push(ctx context.Context, t *sdk.Task) error {
	if d := seconds(t.Context().Params["delay"]); d > 0 {
		t.Logger().Info("waiting before the push", "delay", d.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	var value any = 42
	if n, ok := number(t.Context().Params["bytes"]); ok && n > 0 {
		// A value of that many bytes: a test of the size limits.
		value = strings.Repeat("x", int(n))
	}
	if err := t.XComPush(ctx, "value", value); err != nil {
		return err
	}
	t.Logger().Info("pushed xcom", "key", "value", "value", 42)
	return nil
}

func pull(ctx context.Context, t *sdk.Task) error {
	v, err := t.XComPull(ctx, "push", "value")
	if err != nil {
		return err
	}
	t.Logger().Info("pulled xcom", "task_id", "push", "key", "value", "value", v)
	if n, ok := v.(int64); !ok || n != 42 {
		return sdk.Fail(fmt.Errorf("xcom value of push is %v, want 42", v))
	}
	return nil
}

func readConfig(ctx context.Context, t *sdk.Task) error {
	greeting, err := t.Variable(ctx, "greeting")
	if err != nil {
		return err
	}
	conn, err := t.Connection(ctx, "db")
	if err != nil {
		return err
	}
	t.Logger().Info("read config", "greeting", greeting, "conn_id", conn.ConnID, "conn_type", conn.ConnType,
		"host", conn.Host, "port", conn.Port, "login", conn.Login)
	if err := t.XComPush(ctx, "greeting", greeting); err != nil {
		return err
	}
	return t.XComPush(ctx, "db", map[string]any{
		"conn_id": conn.ConnID, "conn_type": conn.ConnType, "host": conn.Host, "port": conn.Port, "schema": conn.Schema, "login": conn.Login,
	})
}

func leakSecrets(ctx context.Context, t *sdk.Task) error {
	conn, err := t.Connection(ctx, "db")
	if err != nil {
		return err
	}
	key, err := t.Variable(ctx, "service_api_key")
	if err != nil {
		return err
	}
	token, _ := conn.Extra["api_token"].(string)
	t.Logger().Info("connecting with password "+conn.Password, "password", conn.Password, "token", token, "key", key)
	fmt.Println("stdout:", conn.Password, token, key)
	fmt.Fprintln(os.Stderr, "stderr:", conn.Password, token, key)
	return fmt.Errorf("login as %s with password %s refused", conn.Login, conn.Password)
}

// seconds reads a number of seconds from a param.
func seconds(v any) time.Duration {
	switch s := v.(type) {
	case int64:
		return time.Duration(s) * time.Second
	case float64:
		return time.Duration(s * float64(time.Second))
	}
	return 0
}

func sleep(ctx context.Context, t *sdk.Task) error {
	d := 60 * time.Second
	switch s := t.Context().Params["seconds"].(type) {
	case int64:
		d = time.Duration(s) * time.Second
	case float64:
		d = time.Duration(s * float64(time.Second))
	}
	t.Logger().Info("sleeping", "duration", d.String())
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func panicky(ctx context.Context, t *sdk.Task) error {
	t.Logger().Info("about to panic")
	panic("panicking on purpose")
}

// number returns v as a float64 when it is a number: params and next_kwargs
// pass through JSON and msgpack, so an integer may arrive as int64 or
// float64.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// floatParam returns the number params[key], or def when it is not set. A
// value that is not a number fails the task.
func floatParam(t *sdk.Task, key string, def float64) (float64, error) {
	v, ok := t.Context().Params[key]
	if !ok || v == nil {
		return def, nil
	}
	n, ok := number(v)
	if !ok {
		return 0, sdk.Fail(fmt.Errorf("params.%s is %v (%T), want a number", key, v, v))
	}
	return n, nil
}

// stringParam returns the string params[key], "" when it is not set.
func stringParam(t *sdk.Task, key string) (string, error) {
	v, ok := t.Context().Params[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", sdk.Fail(fmt.Errorf("params.%s is %v (%T), want a string", key, v, v))
	}
	return s, nil
}

func wait(ctx context.Context, t *sdk.Task) error {
	seconds, err := floatParam(t, "seconds", 1)
	if err != nil {
		return err
	}
	t.Logger().Info("deferring", "trigger", "timedelta", "delta", seconds)
	return t.Defer(ctx, "timedelta", map[string]any{"delta": seconds},
		"resume", map[string]any{"deferred_at": time.Now().UTC().Format(time.RFC3339)}, 0)
}

func waitEvent(ctx context.Context, t *sdk.Task) error {
	name, err := stringParam(t, "name")
	if err != nil {
		return err
	}
	if name == "" {
		return sdk.Fail(errors.New("params.name is required: the name of the event to wait for"))
	}
	timeout, err := floatParam(t, "timeout", 0)
	if err != nil {
		return err
	}
	d := time.Duration(timeout * float64(time.Second))
	t.Logger().Info("deferring", "trigger", "event", "name", name, "timeout", d.String())
	return t.Defer(ctx, "event", map[string]any{"name": name},
		"resume", map[string]any{"deferred_at": time.Now().UTC().Format(time.RFC3339)}, d)
}

func waitHTTP(ctx context.Context, t *sdk.Task) error {
	url, err := stringParam(t, "url")
	if err != nil {
		return err
	}
	if url == "" {
		return sdk.Fail(errors.New("params.url is required: the URL to poll"))
	}
	contains, err := stringParam(t, "contains")
	if err != nil {
		return err
	}
	kwargs := map[string]any{"url": url, "interval": "50ms"}
	if contains != "" {
		kwargs["body_contains"] = contains
	}
	t.Logger().Info("deferring", "trigger", "http", "url", url, "body_contains", contains)
	return t.Defer(ctx, "http", kwargs,
		"resume", map[string]any{"deferred_at": time.Now().UTC().Format(time.RFC3339)}, 0)
}

// resume is where wait, wait_event and wait_http continue once their
// trigger fired.
func resume(ctx context.Context, t *sdk.Task) error {
	t.Logger().Info("resumed", "trigger_event", t.Event(), "deferred_at", t.NextKwargs()["deferred_at"])
	return t.XComPush(ctx, "event", t.Event())
}

func waitTwice(ctx context.Context, t *sdk.Task) error {
	return deferAgain(ctx, t, 1)
}

// deferAgain defers wait_twice for its round.
func deferAgain(ctx context.Context, t *sdk.Task, round int) error {
	seconds, err := floatParam(t, "seconds", 0.2)
	if err != nil {
		return err
	}
	t.Logger().Info("deferring", "trigger", "timedelta", "delta", seconds, "round", round)
	return t.Defer(ctx, "timedelta", map[string]any{"delta": seconds}, "again", map[string]any{"round": round}, 0)
}

// again is where wait_twice continues: it defers once more after round 1
// and succeeds after round 2.
func again(ctx context.Context, t *sdk.Task) error {
	round, _ := number(t.NextKwargs()["round"])
	t.Logger().Info("resumed", "round", round, "trigger_event", t.Event())
	switch round {
	case 1:
		return deferAgain(ctx, t, 2)
	case 2:
		return t.XComPush(ctx, "rounds", 2)
	}
	return sdk.Fail(fmt.Errorf("next_kwargs.round is %v, want 1 or 2", t.NextKwargs()["round"]))
}

// extract is the first step of the polyglot pipeline (examples/polyglot):
// it waits on a timer (params.seconds, default 0.5) as if for data to land,
// then pushes XCom "value" = params.value (default 21).
func extract(ctx context.Context, t *sdk.Task) error {
	seconds, err := floatParam(t, "seconds", 0.5)
	if err != nil {
		return err
	}
	t.Logger().Info("waiting for the data to land", "seconds", seconds)
	return t.Defer(ctx, "timedelta", map[string]any{"delta": seconds}, "extracted", nil, 0)
}

func extracted(ctx context.Context, t *sdk.Task) error {
	v, err := floatParam(t, "value", 21)
	if err != nil {
		return err
	}
	n := int64(v)
	t.Logger().Info("extracted", "value", n)
	return t.XComPush(ctx, "value", n)
}
