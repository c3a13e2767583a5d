// Command taskbin is the bench's task process: a no-op or deferring command
// task, or the no-op Go SDK runtime, by the mode in TASKWIRE_BENCH_MODE
// (see package internal/benchtask). cmd/bench builds it when it can, so
// that a task's start costs what a small binary's does.
package main

import (
	"fmt"
	"os"

	"github.com/taskwire/taskwire/internal/benchtask"
)

func main() {
	mode := os.Getenv(benchtask.EnvMode)
	status, ok := benchtask.Run(mode)
	if !ok {
		fmt.Fprintf(os.Stderr, "taskbin: %s=%q: unknown mode\n", benchtask.EnvMode, mode)
		status = 2
	}
	os.Exit(status)
}
