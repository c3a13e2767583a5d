// Command polyglot runs a three-step pipeline across three language
// runtimes through a taskwire executor, passing data by XCom:
//
//	extract   (queue go,     examples/gotasks)   defers on a timer, then pushes "value" = 21
//	transform (queue python, examples/pytasks)   pulls it and returns value × 2
//	load      (queue java,   examples/javatasks) pulls transform's return_value and returns "loaded 42"
//
// It submits each step when the one before has succeeded, prints each
// task's final state and the XCom values, and exits non-zero if a step
// fails. The workers serving the three queues come from a runtime file
// like examples/polyglot/worker.yaml (demo.sh writes one).
//
//	go run ./examples/polyglot --api-url http://127.0.0.1:8080
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "polyglot:", err)
		os.Exit(1)
	}
}

// Step is one task of the pipeline and the XCom it leaves.
type Step struct {
	Queue, Task, XComKey string
	Params               map[string]any
}

// Pipeline is the example's three steps.
var Pipeline = []Step{
	{Queue: "go", Task: "extract", XComKey: "value", Params: map[string]any{"seconds": 0.5, "value": 21}},
	{Queue: "python", Task: "transform", XComKey: "return_value", Params: map[string]any{"from_task": "extract"}},
	{Queue: "java", Task: "load", XComKey: "return_value", Params: map[string]any{"from_task": "transform"}},
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("polyglot", flag.ContinueOnError)
	apiURL := fs.String("api-url", envOr("TASKWIRE_API_URL", "http://127.0.0.1:8080"), "executor URL (TASKWIRE_API_URL)")
	runID := fs.String("run-id", "polyglot__"+time.Now().UTC().Format("20060102T150405.000"), "DAG run id")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	api, err := client.New(client.Config{URL: *apiURL, Token: os.Getenv("TASKWIRE_OPERATOR_TOKEN")})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return RunPipeline(ctx, api, *runID, func(s Step, ti *activity.TaskInstance, xcom any) {
		b, _ := json.Marshal(xcom)
		fmt.Printf("%-9s %-6s %-7s try %d  xcom %s = %s\n", s.Task, s.Queue, ti.State, ti.TryNumber, s.XComKey, b)
	})
}

// RunPipeline runs the steps in order in DAG "polyglot", run runID, and
// calls done after each with the finished task instance and its XCom.
func RunPipeline(ctx context.Context, api *client.Client, runID string, done func(Step, *activity.TaskInstance, any)) error {
	for _, s := range Pipeline {
		ti, err := api.Submit(ctx, activity.TaskSpec{Queue: s.Queue, DagID: "polyglot", RunID: runID, TaskID: s.Task,
			Entrypoint: activity.Entrypoint{Task: s.Task}, Params: s.Params})
		if err != nil {
			return fmt.Errorf("submit %s: %w", s.Task, err)
		}
		ti, err = api.Wait(ctx, ti.ID, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", s.Task, err)
		}
		if ti.State != activity.StateSuccess {
			done(s, ti, nil)
			return fmt.Errorf("%s ended %s: %s", s.Task, ti.State, ti.Reason)
		}
		v, err := api.XCom(ctx, "polyglot", runID, s.Task, s.XComKey)
		if err != nil {
			return err
		}
		done(s, ti, v)
	}
	return nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
