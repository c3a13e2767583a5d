package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/internal/bench"
	"github.com/taskwire/taskwire/sdk"
)

// Environment the worker gives a command task (see package worker).
const (
	envTIID       = "TASKWIRE_TI_ID"
	envDeferFile  = "TASKWIRE_DEFER_FILE"
	envNextMethod = "TASKWIRE_NEXT_METHOD"
)

// deferSpec defers on an already-due timer, resuming at "resume".
const deferSpec = `{"trigger":"timedelta","kwargs":{"delta":0},"next_method":"resume"}`

// child runs the bench binary re-executed in mode and returns its exit
// status.
func child(mode string, args []string) int {
	switch mode {
	case bench.ModeNoop:
		now := time.Now()
		if dir := os.Getenv(bench.EnvStampDir); dir != "" {
			if err := bench.WriteStamp(dir, os.Getenv(envTIID), now); err != nil {
				fmt.Fprintln(os.Stderr, "bench noop:", err)
				return 1
			}
		}
		return 0
	case bench.ModeDefer:
		now := time.Now()
		dir, ti := os.Getenv(bench.EnvStampDir), os.Getenv(envTIID)
		if os.Getenv(envNextMethod) != "" {
			if err := bench.WriteStamp(dir, ti+".resume", now); err != nil {
				fmt.Fprintln(os.Stderr, "bench defer:", err)
				return 1
			}
			return 0
		}
		if err := os.WriteFile(os.Getenv(envDeferFile), []byte(deferSpec), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench defer:", err)
			return 1
		}
		if err := bench.WriteStamp(dir, ti+".defer", time.Now()); err != nil {
			fmt.Fprintln(os.Stderr, "bench defer:", err)
			return 1
		}
		return 0
	case bench.ModeSDK:
		r := sdk.New()
		r.Register("noop", func(context.Context, *sdk.Task) error { return nil })
		r.Main() // exits
		return 1
	case bench.ModeTriggerer:
		return triggererChild(args)
	}
	fmt.Fprintf(os.Stderr, "bench: %s=%q: unknown mode\n", bench.EnvMode, mode)
	return 2
}

func triggererChild(args []string) int {
	fs := flag.NewFlagSet("bench triggerer", flag.ContinueOnError)
	var cfg bench.TriggererChildConfig
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "NATS URL")
	fs.IntVar(&cfg.Capacity, "capacity", 0, "triggers held at most")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := bench.RunTriggererChild(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench triggerer:", err)
		return 1
	}
	return 0
}
