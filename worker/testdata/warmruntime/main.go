// Command warmruntime is a warm Go SDK runtime for the worker's warm-mode
// tests; the task named in StartupDetails selects a behaviour.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/taskwire/taskwire/sdk"
)

func main() {
	rt := sdk.New()
	rt.Register("noop", func(ctx context.Context, t *sdk.Task) error {
		t.Logger().Info("noop", "pid", os.Getpid())
		return nil
	})
	// block runs until it is cancelled.
	rt.Register("block", func(ctx context.Context, t *sdk.Task) error {
		t.Logger().Info(fmt.Sprintf("started pid=%d", os.Getpid()))
		<-ctx.Done()
		t.Logger().Info("cancelled")
		return ctx.Err()
	})
	// stubborn ignores its cancellation.
	rt.Register("stubborn", func(ctx context.Context, t *sdk.Task) error {
		t.Logger().Info(fmt.Sprintf("started pid=%d", os.Getpid()))
		time.Sleep(time.Hour)
		return nil
	})
	// api reads the variable named after its task instance and masks it.
	rt.Register("api", func(ctx context.Context, t *sdk.Task) error {
		v, err := t.Variable(ctx, t.TI().ID)
		if err != nil {
			return err
		}
		if err := t.MaskSecret(ctx, v); err != nil {
			return err
		}
		t.Logger().Info("the value is " + v)
		return nil
	})
	rt.Register("defer", func(ctx context.Context, t *sdk.Task) error {
		return t.Defer(ctx, "taskwire.triggers.TimeDelta", map[string]any{"delta": "1s"}, "resume",
			map[string]any{"n": "1"}, time.Minute)
	})
	rt.RegisterMethod("defer", "resume", func(ctx context.Context, t *sdk.Task) error {
		t.Logger().Info(fmt.Sprintf("resumed with %v", t.NextKwargs()["n"]))
		return nil
	})
	rt.Main()
}
