// Command gotasks is a task runtime built with the Go SDK: the worker starts
// it per task try (--runtime 'go=gotasks --comm {comm_addr} --logs
// {logs_addr}'), and it runs the task the try names.
//
// Tasks: noop (succeeds), fail (returns an error), push (pushes XCom "value"
// = 42), pull (pulls "value" from task push in the same run; fails unless it
// is 42), read_config (reads variable "greeting" and connection "db" and
// pushes them), sleep (sleeps 60s, or params.seconds, until cancelled) and
// panic.
package main

import (
	"context"
	"errors"
	"fmt"
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
	r.Register("sleep", sleep)
	r.Register("panic", panicky)
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
	if err := t.XComPush(ctx, "value", 42); err != nil {
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
