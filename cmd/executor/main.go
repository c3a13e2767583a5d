// Command executor is taskwire's executor (executor serve) and its operator
// CLI (submit, get, list, logs, cancel, event, variables, connections,
// xcom, workers, triggerers, queues); the command line lives in package
// cli. Every flag falls back to the TASKWIRE_* environment variable named
// in its help; see executor <command> -h.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskwire/taskwire/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Run(ctx, cli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
