package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/activity"
)

// Throughput is the rate of no-op tasks run through the cluster.
type Throughput struct {
	Tasks int `json:"tasks"`
	// Seconds is from the first Submit call to the last success recorded
	// (the executor's end_date).
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"tasks_per_s"`
	// CPUMillisPerTask is the CPU time (user + system) the bench process —
	// NATS, executor, workers, triggerer and client, not the task
	// processes — spent per task in the phase: less at the mercy of other
	// load on the machine than the rate is.
	CPUMillisPerTask float64 `json:"cpu_ms_per_task"`
}

// commandSpec is a no-op command task: the bench binary in mode.
func commandSpec(self, mode, stampDir string) activity.TaskSpec {
	env := childEnv(mode)
	if stampDir != "" {
		env[EnvStampDir] = stampDir
	}
	return activity.TaskSpec{Queue: queueCommand, TaskID: "bench_" + mode,
		Entrypoint: activity.Entrypoint{Command: []string{self}, Env: env}}
}

// goSpec is a no-op task of the Go SDK runtime.
func goSpec() activity.TaskSpec {
	return activity.TaskSpec{Queue: queueGo, TaskID: "bench_sdk", Entrypoint: activity.Entrypoint{Task: "noop"}}
}

// throughput submits n tasks of spec, inflight Submit calls at a time, and
// waits until every one has succeeded.
func throughput(ctx context.Context, c *cluster, spec activity.TaskSpec, n, inflight int) (Throughput, error) {
	return throughputOf(ctx, c, func(int) activity.TaskSpec { return spec }, n, inflight)
}

// throughputOf is throughput with task i's spec spec(i).
func throughputOf(ctx context.Context, c *cluster, spec func(i int) activity.TaskSpec, n, inflight int) (Throughput, error) {
	ids := make([]string, n)
	cpu0 := processCPU()
	start := time.Now()
	// inflight submitters, each taking the next task until none is left
	// (kept goroutines: one per task would grow a new stack each time, the
	// harness's cost counted in the cluster's CPU).
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range min(inflight, n) {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || gctx.Err() != nil {
					return nil
				}
				ti, err := c.api.Submit(gctx, spec(i))
				if err != nil {
					return fmt.Errorf("submit task %d: %w", i, err)
				}
				ids[i] = ti.ID
			}
		})
	}
	if err := g.Wait(); err != nil {
		return Throughput{}, err
	}
	var last time.Time
	for _, id := range ids {
		ti, err := c.tracker.succeeded(ctx, id)
		if err != nil {
			return Throughput{}, err
		}
		if ti.EndDate == nil {
			return Throughput{}, fmt.Errorf("task instance %s succeeded with no end date", id)
		}
		if ti.EndDate.After(last) {
			last = *ti.EndDate
		}
	}
	cpu := processCPU() - cpu0
	elapsed := last.Sub(start)
	return Throughput{Tasks: n, Seconds: elapsed.Seconds(), PerSecond: float64(n) / elapsed.Seconds(),
		CPUMillisPerTask: float64(cpu.Microseconds()) / 1000 / float64(n)}, nil
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dispatch measures, one task at a time, from just before Submit is called
// to the start stamp of the task process (ModeNoop), for warmup(n) tasks
// not counted and n counted.
func dispatch(ctx context.Context, c *cluster, self, stampDir string, n int, done *atomic.Int64) (Latency, error) {
	spec := commandSpec(self, ModeNoop, stampDir)
	warm := warmup(n)
	out := make([]time.Duration, 0, n)
	for i := range warm + n {
		before := time.Now()
		ti, err := c.api.Submit(ctx, spec)
		if err != nil {
			return Latency{}, fmt.Errorf("submit: %w", err)
		}
		if _, err := c.tracker.succeeded(ctx, ti.ID); err != nil {
			return Latency{}, err
		}
		started, err := readStamp(stampDir, ti.ID)
		if err != nil {
			return Latency{}, err
		}
		if i >= warm {
			out = append(out, started.Sub(before))
			done.Add(1)
		}
	}
	return summarize(out), nil
}

// deferral measures, one task at a time, from the end of a ModeDefer
// process (it defers on an already-due timer) to the start of its resumed
// process, for warmup(n) tasks not counted and n counted.
func deferral(ctx context.Context, c *cluster, self, stampDir string, n int, done *atomic.Int64) (Latency, error) {
	spec := commandSpec(self, ModeDefer, stampDir)
	warm := warmup(n)
	out := make([]time.Duration, 0, n)
	for i := range warm + n {
		ti, err := c.api.Submit(ctx, spec)
		if err != nil {
			return Latency{}, fmt.Errorf("submit: %w", err)
		}
		if ti, err = c.tracker.succeeded(ctx, ti.ID); err != nil {
			return Latency{}, err
		}
		if ti.TryNumber != 1 {
			return Latency{}, fmt.Errorf("deferring task instance %s succeeded at try %d, want 1", ti.ID, ti.TryNumber)
		}
		deferred, err := readStamp(stampDir, ti.ID+".defer")
		if err != nil {
			return Latency{}, err
		}
		resumed, err := readStamp(stampDir, ti.ID+".resume")
		if err != nil {
			return Latency{}, err
		}
		if i >= warm {
			out = append(out, resumed.Sub(deferred))
			done.Add(1)
		}
	}
	return summarize(out), nil
}

// readStamp reads a time written by a task process, in Unix nanoseconds.
func readStamp(dir, name string) (time.Time, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return time.Time{}, fmt.Errorf("stamp: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("stamp %s: %w", name, err)
	}
	return time.Unix(0, n), nil
}
