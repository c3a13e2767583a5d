// Command bench measures taskwire beside the raw limits of the machine it
// runs on, in one run: it starts an embedded cluster on 127.0.0.1 (NATS with
// JetStream, an executor, workers and a triggerer, all in this process) and
// reports throughput, dispatch latency, deferral round trips and triggerer
// capacity, each beside its raw limit and the performance issue's target.
//
//	go run ./cmd/bench            # a table on stdout
//	go run ./cmd/bench --json     # the same as JSON
//
// Its task processes and Go SDK runtime are cmd/bench/taskbin, a small
// binary it builds with the go command on start (run it from the module's
// directory); with --task-bin self, or when that build fails, it
// re-executes itself for them, as it always does for its triggerer child
// (see package internal/bench). Exit status: 0 when every phase ran
// (targets missed included), 1 on a failure, 2 on bad usage, 130 when interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/taskwire/taskwire/internal/bench"
)

func main() {
	if mode := os.Getenv(bench.EnvMode); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := exitCode(ctx, run(ctx, os.Args[1:], os.Stdout, os.Stderr))
	stop() // cancels ctx: after exitCode has looked at it
	os.Exit(code)
}

// usageError is bad usage: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(ctx context.Context, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "bench: interrupted:", err)
		return 130
	}
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 1
}

const usage = `usage: bench [flags]

Starts an embedded taskwire cluster on 127.0.0.1 and measures it beside the
raw limits of this machine, in the same run. Prints a table on stdout (JSON
with --json) and a progress line on stderr when it is a terminal.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	var cfg bench.Config
	fs.IntVar(&cfg.Tasks, "tasks", bench.TasksDefault, "no-op tasks per throughput phase (command, Go SDK)")
	fs.IntVar(&cfg.Concurrency, "concurrency", bench.ConcurrencyDefault, "slots of each worker")
	fs.IntVar(&cfg.Workers, "workers", bench.WorkersDefault, "workers")
	fs.IntVar(&cfg.Inflight, "inflight", bench.InflightDefault, "submit calls in flight in the throughput phases")
	fs.IntVar(&cfg.LatencyTasks, "latency-tasks", bench.LatencyTasksDefault, "tasks whose dispatch latency is measured, one at a time")
	fs.IntVar(&cfg.Deferrals, "deferrals", bench.DeferralsDefault, "deferral round trips measured, one at a time")
	timers := fs.String("timers", joinInts(bench.TimersDefault), "comma-separated numbers of timers the triggerer is measured holding")
	fs.IntVar(&cfg.LateTimers, "late-timers", bench.LateTimersDefault, "timers whose lateness is measured while the triggerer holds the others")
	fs.DurationVar(&cfg.LateSpread, "late-spread", bench.LateSpreadDefault, "time over which the late timers are due")
	fs.IntVar(&cfg.Queues, "queues", bench.QueuesDefault, "queues the many-queues phase spreads its tasks over")
	fs.IntVar(&cfg.Backlog, "backlog", bench.BacklogDefault, "activities left pending on another queue during the backlog phase")
	fs.IntVar(&cfg.Samples, "samples", bench.SamplesDefault, "samples of each raw limit")
	fs.Func("fleet", "comma-separated numbers of simulated workers (e.g. 100,1000) the fleet phase runs, each against a fresh executor; none by default (1,000 take minutes)",
		func(s string) (err error) { cfg.Fleet, err = parseInts(s); return err })
	fs.IntVar(&cfg.FleetConcurrency, "fleet-concurrency", 1, "slots of each simulated worker")
	fs.BoolVar(&cfg.FleetOnly, "fleet-only", false, "run the fleet phase alone")
	fs.Func("records", "comma-separated ascending numbers of finished task-instance records (e.g. 100000,1000000) an executor is started on, for its RSS and time to ready; none by default",
		func(s string) (err error) { cfg.Records, err = parseInts(s); return err })
	fs.BoolVar(&cfg.RecordsOnly, "records-only", false, "run the records phase alone")
	fs.BoolVar(&cfg.DagOnly, "dag-only", false, "stop after the DAG-run phases (the raw limits, dispatch latency and flat command phase they are compared with run first)")
	fs.IntVar(&cfg.DagRounds, "dag-rounds", bench.DagRoundsDefault, "fan-out/fan-in DAG runs, each next to a flat phase of as many command tasks (the DAG figure is the median of their ratios)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	noProgress := fs.Bool("no-progress", false, "no progress line on stderr")
	var prof bench.Profile
	bench.ProfileFlags(fs, &prof)
	taskBin := fs.String("task-bin", "", "binary run as the task processes and Go SDK runtime: a path, \"self\" for this binary, or empty to build cmd/bench/taskbin")
	python := fs.String("python", "", "python with which the warm phase runs Python SDK tasks (this checkout's sdk/python/src on its PYTHONPATH); default .venv/bin/python when it exists; \"none\" skips them")
	javaJar := fs.String("java-sdk-jar", "", "Java SDK jar with which the warm phase runs Java SDK tasks; default sdk/java/target/taskwire-sdk.jar when it exists and java is on $PATH; \"none\" skips them")
	bench.AirflowFlags(fs, &cfg)
	bench.SleeperFlags(fs, &cfg)
	bench.PoolFlags(fs, &cfg)
	logLevel := fs.String("log-level", "", "log the cluster's lines at this level and above on stderr (debug, info, warn, error); default none")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	var err error
	if cfg.Timers, err = parseInts(*timers); err != nil {
		return usageError{fmt.Errorf("--timers: %w", err)}
	}
	if *logLevel != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
			return usageError{fmt.Errorf("--log-level: %w", err)}
		}
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	}
	if !*noProgress && isTerminal(stderr) {
		cfg.Progress = stderr
	}
	stopProfile, err := prof.Start(&cfg)
	if err != nil {
		if errors.Is(err, bench.ErrConfig) {
			return usageError{err}
		}
		return err
	}
	defer func() {
		if err := stopProfile(); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		}
	}()
	switch *taskBin {
	case "self":
	case "":
		dir, err := os.MkdirTemp("", "taskwire-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if cfg.TaskBin, err = bench.BuildTaskBin(ctx, dir); err != nil {
			fmt.Fprintf(stderr, "bench: %v; the bench binary itself runs the tasks (slower to start)\n", err)
		}
	default:
		cfg.TaskBin = *taskBin
	}
	cfg.Python, cfg.PythonPath, cfg.JavaSDKJar = bench.SDKRuntimes(*python, *javaJar)
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, bench.ErrConfig) {
			return usageError{err}
		}
		return err
	}
	if *asJSON {
		return r.WriteJSON(stdout)
	}
	return r.WriteTable(stdout)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	if f, ok := w.(*os.File); ok {
		fi, err := f.Stat()
		return err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return false
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
