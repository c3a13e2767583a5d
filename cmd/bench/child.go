package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskwire/taskwire/internal/bench"
	"github.com/taskwire/taskwire/internal/benchtask"
)

// child runs the bench binary re-executed in mode and returns its exit
// status: a task process or the Go SDK runtime when no task binary could be
// built (see taskBin), or the triggerer child.
func child(mode string, args []string) int {
	switch mode {
	case bench.ModeTriggerer:
		return triggererChild(args)
	case bench.ModeFleet:
		return fleetChild(args)
	case bench.ModeRecords:
		return bench.RecordsChildMain(args)
	}
	if status, ok := benchtask.Run(mode); ok {
		return status
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

func fleetChild(args []string) int {
	cfg, err := bench.ParseFleetChildArgs(args, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench fleet:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := bench.RunFleetChild(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench fleet:", err)
		return 1
	}
	return 0
}
