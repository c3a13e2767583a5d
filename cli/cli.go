// Package cli is the executor binary's command line: executor serve (the
// executor itself, see serve.go) and the operator commands submit, get,
// list, logs, cancel, event, variables, connections, xcom, workers,
// triggerers and queues, which talk to a running executor's public API.
// Every flag falls back to the TASKWIRE_* environment variable named in its
// help; see executor <command> -h. cmd/executor only calls [Run].
//
// One command per file: serve.go, submit.go, inspect.go (get, list, logs),
// ops.go (cancel, workers, triggerers, queues), event.go, config.go
// (variables, connections), xcom.go; flags.go holds what they share.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// Env is the process's outside world: its standard streams and
// environment. The zero Env is not usable; [OSEnv] is the real one.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
}

// OSEnv is the process's own standard streams and environment.
func OSEnv() Env {
	return Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv}
}

// Run runs the command line args (without the program name) and returns
// the process's exit status, having printed any error on env.Stderr.
func Run(ctx context.Context, env Env, args []string) int {
	c := &cli{stdin: env.Stdin, stdout: env.Stdout, stderr: env.Stderr, lookupEnv: env.LookupEnv}
	return c.exitCode(c.run(ctx, args))
}

const usage = `usage: executor <command> [arguments]

The taskwire executor and its operator CLI. The CLI commands call the public
API of the executor at --api-url (TASKWIRE_API_URL, default
http://127.0.0.1:8080) with the operator token --token (TASKWIRE_OPERATOR_TOKEN).

Commands:
  serve [flags]                        run the executor (embedded NATS unless --nats-url)
  init --dir DIR [--host HOST]         write a secure setup: operator token, NATS credentials, worker config
  submit [flags] [-- CMD [ARGS...]]    queue a task instance; --wait follows it to its end
  get ID                               show a task instance and its tries
  list [--state S,S] [--queue Q]       list task instances, newest first
  logs ID [--try N] [--tail N] [--follow]  print a task instance's logs
  logs purge --older-than D|--task ID|--all  remove stored log lines
  cancel ID                            cancel a task instance
  event send NAME [PAYLOAD]            send an external event to deferred tasks
  variables list|get|set|delete        manage variables
  connections list|get|set|delete      manage connections
  xcom get DAG RUN TASK [KEY]          print an XCom value (JSON)
  workers [drain ID]                   list workers (live, draining, lost); drain one
  triggerers                           list triggerers (live, lost) and the triggers held
  queues                               per queue: pending, running, deferred, workers, last minute
  pools [set NAME --slots N|delete NAME]   list pools (slots, open, waiting); set or delete one
  limits [set KEY --rps R [--concurrent C]|delete KEY]   rate limits of polling triggers
  dags apply -f FILE|list|get|pause|unpause|delete   manage DAGs
  runs trigger DAG [--wait]|get|list|clear            trigger and follow DAG runs

Run "executor <command> -h" for a command's flags. Output is a table, or
JSON with --json.

Exit status: 0 ok; 1 a task waited for did not succeed, or serve failed;
2 bad usage or an API error; 130 interrupted.
`

// command is one subcommand. failCode is the exit status of an error that
// carries none (an *exitError does).
type command struct {
	name     string
	run      func(c *cli, ctx context.Context, args []string) error
	failCode int
}

var commands = []command{
	{"serve", func(c *cli, ctx context.Context, args []string) error { return serveCmd(ctx, args, c.lookupEnv) }, 1},
	{"init", (*cli).init, 2},
	{"submit", (*cli).submit, 2},
	{"get", (*cli).get, 2},
	{"list", (*cli).list, 2},
	{"logs", (*cli).logs, 2},
	{"cancel", (*cli).cancel, 2},
	{"event", (*cli).event, 2},
	{"variables", (*cli).variables, 2},
	{"connections", (*cli).connections, 2},
	{"xcom", (*cli).xcom, 2},
	{"workers", (*cli).workers, 2},
	{"triggerers", (*cli).triggerers, 2},
	{"queues", (*cli).queues, 2},
	{"pools", (*cli).pools, 2},
	{"limits", (*cli).limits, 2},
	{"dags", (*cli).dags, 2},
	{"runs", (*cli).runs, 2},
}

// cli is the process's outside world, replaced in tests.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return nil
	}
	for _, cmd := range commands {
		if cmd.name == args[0] {
			err := cmd.run(c, ctx, args[1:])
			var ee *exitError
			if err != nil && !errors.As(err, &ee) && !errors.Is(err, flag.ErrHelp) {
				err = &exitError{code: cmd.failCode, err: err}
			}
			return err
		}
	}
	fmt.Fprintf(c.stderr, "executor: unknown command %q\n\n%s", args[0], usage)
	return &exitError{code: 2}
}

// exitError carries the process's exit status. A nil err means the
// message, if any, was printed already.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as bad usage: exit status 2.
func usageErr(err error) error { return &exitError{code: 2, err: err} }

// usagef is usageErr of a formatted message.
func usagef(format string, args ...any) error { return usageErr(fmt.Errorf(format, args...)) }

// exitCode prints err and returns the exit status for it.
func (c *cli) exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(c.stderr, "executor: interrupted")
		return 130
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(c.stderr, "executor:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(c.stderr, "executor:", err)
	return 1
}
