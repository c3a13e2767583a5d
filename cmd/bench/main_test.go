package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/internal/bench"
	"github.com/taskwire/taskwire/internal/testbin"
)

// TestMain makes the test binary a bench binary: re-executed with
// bench.EnvMode set, it is a task process, the Go SDK runtime or the
// triggerer child.
func TestMain(m *testing.M) {
	if mode := os.Getenv(bench.EnvMode); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// tinyArgs run every phase at a tiny size.
var tinyArgs = []string{"--tasks", "20", "--latency-tasks", "5", "--deferrals", "5",
	"--timers", "200", "--late-timers", "200", "--late-spread", "250ms", "--samples", "10", "--queues", "5", "--backlog", "300", "--no-progress"}

// TestRun runs the whole bench at tiny sizes.
func TestRun(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	// The warm phase with the Python and Java SDKs, and a few sleepers.
	args := append([]string{"--json", "--python", testbin.Python(t), "--java-sdk-jar", testbin.JavaSDKJar(t),
		"--sleepers", "30", "--sleep-for", "300ms"}, tinyArgs...)
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}

	var r bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, stdout.String())
	}
	if len(r.Timers) != 1 || r.Timers[0].Timers != 200 || r.Command.Tasks != 20 || r.Dispatch.N != 5 || r.Deferral.N != 5 ||
		r.ManyQueues.Tasks != 20 || r.Backlog.Messages != 300 || r.Backlog.Command.Tasks != 20 {
		t.Errorf("report sizes do not match the flags:\n%s", stdout.String())
	}
	if r.Warm.Go == nil || r.Warm.Python == nil || r.Warm.Java == nil || r.Warm.Python.Tasks != 20 || r.Warm.Java.Latency.N != 5 ||
		r.Warm.Sleepers == nil || r.Warm.Sleepers.Tasks != 30 || r.Warm.Sleepers.Seconds < 0.3 {
		t.Errorf("warm phase incomplete: %+v", r.Warm)
	}
	if len(r.Targets) == 0 {
		t.Error("no targets in the report")
	}
	if l := r.Pool.Limiting; l == nil || l.Tasks != 20 || l.Slots != 2 || l.Admission.N == 0 || r.Pool.PublishUnderLoad.N == 0 {
		t.Errorf("pool phase without its limiting pool or its publish probe: %+v", r.Pool)
	}
	if r.Config.TaskBin != "taskbin" {
		t.Errorf("task processes were %q, want the built taskbin", r.Config.TaskBin)
	}
	// Every figure, every number of the report, is positive.
	var doc any
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	walkNumbers(doc, "", func(path string, v float64) {
		n++
		if v <= 0 {
			t.Errorf("%s = %v, want > 0", path, v)
		}
	})
	if n < 40 {
		t.Errorf("only %d numbers in the report", n)
	}
	assertCleanedUp(t, tmp)

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"JetStream publish → pull → ack", "no-op command tasks/s", "no-op Go SDK tasks/s",
		"dispatch latency p50", "deferral round trip p99", "over 5 queues", "beside 300 pending", "triggerer holding 200 timers: RSS", "≥ 600/s", "≤ 100 ms"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("stderr not empty with --no-progress and no --log-level:\n%s", stderr.String())
	}
}

// TestRunCancelled cancels the run in its command throughput phase, as
// SIGINT does: it ends with the context's error, its temporary directory
// removed and no child process left.
func TestRunCancelled(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	prog := &phaseWatch{phase: "command tasks", reached: interrupt}
	_, err := bench.Run(runCtx, bench.Config{Tasks: 2000, LatencyTasks: 1, Deferrals: 1, Timers: []int{10},
		LateTimers: 10, Samples: 2, Progress: prog})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if !prog.seen() {
		t.Fatal("the command phase was never reached")
	}
	assertCleanedUp(t, tmp)
}

func TestUsage(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"--tasks", "-1"}, {"--timers", "10,x"}, {"--bogus"}, {"extra"}, {"--log-level", "loud"}} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(ctx, args, &stdout, &stderr)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("run(%q) = %v, want a usage error", args, err)
			}
			if got := exitCode(ctx, err); got != 2 {
				t.Errorf("exit code %d, want 2", got)
			}
		})
	}
}

func TestParseInts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{"10000,100000", []int{10000, 100000}, false},
		{" 5 , 6 ,", []int{5, 6}, false},
		{"", nil, false},
		{"1,a", nil, true},
	} {
		got, err := parseInts(tc.in)
		if (err != nil) != tc.err || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("parseInts(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// walkNumbers calls fn with every number in a decoded JSON document.
func walkNumbers(v any, path string, fn func(path string, v float64)) {
	switch v := v.(type) {
	case float64:
		fn(path, v)
	case map[string]any:
		for k, e := range v {
			walkNumbers(e, path+"."+k, fn)
		}
	case []any:
		for i, e := range v {
			walkNumbers(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// assertCleanedUp checks that the run left nothing in tmp (its TMPDIR)
// and no child process of this one.
func assertCleanedUp(t *testing.T, tmp string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(tmp, "taskwire-bench-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("temporary directories left: %q", left)
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && len(bytes.TrimSpace(b)) > 0 {
			t.Errorf("child processes left: %s", b)
		}
	}
}

// phaseWatch is a progress writer that calls reached once a phase's line
// is drawn.
type phaseWatch struct {
	phase   string
	reached func()

	mu  sync.Mutex
	hit bool
}

func (p *phaseWatch) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(p.phase)) {
		p.mu.Lock()
		p.hit = true
		p.mu.Unlock()
		p.reached()
	}
	return len(b), nil
}

func (p *phaseWatch) seen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hit
}

// TestRunFleet runs the fleet phase alone with a few simulated workers:
// every one is listed, every list is complete, every worker runs tasks,
// and none logs a warning.
func TestRunFleet(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--json", "--fleet", "5", "--fleet-only", "--tasks", "20", "--no-progress"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	var r bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, stdout.String())
	}
	if len(r.Fleet) != 1 {
		t.Fatalf("fleet phases %d, want 1:\n%s", len(r.Fleet), stdout.String())
	}
	f := r.Fleet[0]
	if f.Workers != 5 || f.DistinctWorkers != 5 || f.ListShort != 0 || f.Warnings != 0 || f.Throughput.Tasks != bench.FleetTasks(5) ||
		f.ListedSeconds <= 0 || f.ExecutorIdleCores <= 0 || f.Throughput.PerSecond <= 0 ||
		f.MaxStartSeconds <= 0 || f.LateStarts > f.Throughput.Tasks {
		t.Errorf("fleet of 5: %+v", f)
	}
	if r.Command.Tasks != 0 {
		t.Errorf("--fleet-only ran the command phase too")
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "simulated workers") || strings.Contains(table.String(), "JetStream publish") {
		t.Errorf("fleet-only table:\n%s", table.String())
	}
	assertCleanedUp(t, tmp)
}

// TestRunRecords runs the records phase alone at two sizes: the executor
// child is ready on each, with a memory figure, and the list pages answer;
// the restart after its clean stop decodes no record.
func TestRunRecords(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--json", "--records", "50,300", "--records-only", "--no-progress"}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	var r bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, stdout.String())
	}
	if len(r.Records) != 2 || r.Command.Tasks != 0 {
		t.Fatalf("records phases %d (command tasks %d), want 2 alone:\n%s", len(r.Records), r.Command.Tasks, stdout.String())
	}
	for i, x := range r.Records {
		if x.Records != []int{50, 300}[i] || x.RecordBytes < 100 || x.ReadySeconds <= 0 || x.RSSMB <= 0 || x.HeapMB <= 0 || x.ListMillis <= 0 {
			t.Errorf("records phase %d: %+v", i, x)
		}
		// The first start reads every record; the restart, after its
		// clean stop, none (every record is finished).
		if y := x.Restart; x.Decoded < int64(x.Records) || y.Decoded != 0 || y.ReadySeconds <= 0 || y.RSSMB <= 0 || y.ListMillis <= 0 {
			t.Errorf("records phase %d: decoded %d of %d records at the first start, %d at the restart (want all, then none): %+v",
				i, x.Decoded, x.Records, y.Decoded, x)
		}
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "finished records") || strings.Contains(table.String(), "JetStream publish") {
		t.Errorf("records-only table:\n%s", table.String())
	}
	assertCleanedUp(t, tmp)
}
