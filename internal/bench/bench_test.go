package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/benchtask"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/sdk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSummarize(t *testing.T) {
	t.Parallel()
	msd := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want Latency
	}{
		{"empty", nil, Latency{}},
		{"one", msd(7), Latency{N: 1, P50: 7, P99: 7, Max: 7}},
		{"two", msd(3, 1), Latency{N: 2, P50: 3, P99: 3, Max: 3}},
		{"hundred", msd(hundred...), Latency{N: 100, P50: 51, P99: 100, Max: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Errorf("summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPerSecondAndRatio(t *testing.T) {
	t.Parallel()
	if got := perSecond([]time.Duration{250 * time.Millisecond, 250 * time.Millisecond}); got != 4 {
		t.Errorf("perSecond = %v, want 4", got)
	}
	if got := perSecond(nil); got != 0 {
		t.Errorf("perSecond(nil) = %v, want 0", got)
	}
	if got := ratio(3, 0); got != 0 {
		t.Errorf("ratio(3, 0) = %v, want 0", got)
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]string{0: "0", 999.4: "999", 999.6: "1,000", 26261.2: "26,261", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 10, "[........................] 0/10  1.5s"},
		{5, 10, "[############............] 5/10  1.5s"},
		{10, 10, "[########################] 10/10  1.5s"},
		{0, 0, "phase                    1.5s"},
	} {
		got := progressLine("phase", tc.done, tc.total, 1500*time.Millisecond)
		if !strings.HasSuffix(got, tc.want) {
			t.Errorf("progressLine(%d, %d) = %q, want it to end in %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestProgress(t *testing.T) {
	t.Parallel()
	var w testbin.SyncBuffer
	p := newProgress(&w)
	p.set("phase one", 4, func() int { return 2 })
	p.close()
	got := w.String()
	if !strings.HasPrefix(got, "\r\x1b[Kphase one") || !strings.Contains(got, "2/4") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("progress wrote %q", got)
	}

	quiet := newProgress(nil) // draws nothing, starts nothing
	quiet.set("phase", 1, nil)
	quiet.close()
}

func TestConfig(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	if c.Self == "" || c.Tasks != TasksDefault || c.Concurrency != ConcurrencyDefault || len(c.Timers) != 2 ||
		c.LateSpread != LateSpreadDefault || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for _, bad := range []Config{{Tasks: -1}, {Workers: -2}, {Timers: []int{10, 0}}, {LateSpread: -time.Second}, {Sleepers: 10}, {Sleepers: -1, Python: "python3"},
		{Records: []int{10, 5}}, {Records: []int{0}}, {RecordsOnly: true}, {SleepersOnly: true, Python: "python3"},
		{SleepersOnly: true, Sleepers: 10, Python: "python3", DagOnly: true}, {PoolOnly: true, DagOnly: true}, {PoolOnly: true, FleetOnly: true, Fleet: []int{1}}} {
		if err := bad.WithDefaults().validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("validate(%+v) = %v, want ErrConfig", bad, err)
		}
	}
	only, full := Config{PoolOnly: true}.WithDefaults(), Config{}.WithDefaults()
	if only.PoolRounds != 3 || full.PoolRounds != 1 {
		t.Errorf("pool rounds by default: %d with --pool-only, %d without", only.PoolRounds, full.PoolRounds)
	}
	if _, err := Run(context.Background(), Config{Tasks: -1}); !errors.Is(err, ErrConfig) {
		t.Errorf("Run with a bad config = %v, want ErrConfig", err)
	}
}

func TestWarmup(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{1: 1, 5: 1, 10: 2, 200: 10, 5000: 10} {
		if got := warmup(n); got != want {
			t.Errorf("warmup(%d) = %d, want %d", n, got, want)
		}
	}
}

func testReport() *Report {
	r := &Report{
		Machine: machine(),
		Config:  RunConfig{Tasks: 1000, Concurrency: 8, Workers: 1, Timers: []int{10_000, 100_000}, LateSpreadS: 5},
		Raw: Raw{JetStreamRTT: Latency{N: 300, P50: 0.5, P99: 1, Max: 2}, ForkExecPerSecond: 800, ForkExec: Latency{N: 300, P50: 1.2},
			HandshakePerSecond: 500, Handshake: Latency{N: 300, P50: 2}},
		Command:    Throughput{Tasks: 1000, Seconds: 2, PerSecond: 500},
		GoSDK:      Throughput{Tasks: 1000, Seconds: 2, PerSecond: 450},
		Dispatch:   Latency{N: 200, P50: 2, P99: 12, Max: 15},
		Deferral:   Latency{N: 200, P50: 9, P99: 20, Max: 25},
		ManyQueues: Throughput{Tasks: 1000, Seconds: 2.5, PerSecond: 400},
		Backlog:    Backlog{Messages: 1000, PublishSeconds: 0.1, Command: Throughput{Tasks: 1000, Seconds: 2.5, PerSecond: 350}},
		DAG:        DagFigures{FanTasks: 1000, FanPerSecond: 400, FlatPerSecond: 500, FanPerFlat: 0.8, ChainSteps: 100, StepScheduling: Latency{N: 99, P50: 1, P99: 12}},
		Warm:       Warm{Go: &WarmRuntime{Throughput: Throughput{Tasks: 1000, Seconds: 0.4, PerSecond: 2500}}},
		Timers: []Timers{
			{Timers: 10_000, RSSMiB: 46, ClaimsPerSecond: 15_000, Lateness: Latency{N: 10_000, P50: 0.1, P99: 1, Max: 5}},
			{Timers: 100_000, RSSMiB: 600, ClaimsPerSecond: 20_000, Lateness: Latency{N: 10_000, P50: 0.1, P99: 150, Max: 200}},
		},
	}
	r.finish()
	return r
}

func TestFinish(t *testing.T) {
	t.Parallel()
	r := testReport()
	wantRatios := Ratios{CommandPerForkExec: 0.625, GoSDKPerHandshake: 0.9, DispatchP50PerRTT: 4, DispatchP99PerRTT: 12, DeferralP50PerRTT: 18,
		ManyQueuesPerCommand: 0.8, BacklogPerCommand: 0.7, DagFanPerCommand: 0.8, WarmGoPerCommand: 5}
	if r.Ratios != wantRatios {
		t.Errorf("ratios = %+v, want %+v", r.Ratios, wantRatios)
	}
	want := map[string]bool{
		"command_tasks_per_s": false, "go_sdk_tasks_per_s": true, "dispatch_p50_ms": true, "dispatch_p99_ms": false,
		"deferral_p50_ms": true, "deferral_p99_ms": true, "timers_10000_lateness_p99_ms": true,
		"timers_100000_rss_mib": false, "timers_100000_lateness_p99_ms": false,
		"many_queues_per_command": true, "backlog_per_command": false,
		"dag_fan_per_command": false, "dag_step_p50_ms": true, "dag_step_p99_ms": false, "warm_go_per_command": true,
	}
	got := map[string]bool{}
	for _, tg := range r.Targets {
		got[tg.Figure] = tg.Met
	}
	if len(got) != len(want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	for f, met := range want {
		if g, ok := got[f]; !ok || g != met {
			t.Errorf("target %s met = %v (present %v), want %v", f, g, ok, met)
		}
	}
}

func TestTargetString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{AtLeast: true, Limit: 600, Unit: "/s", Met: true}, "≥ 600/s ✓"},
		{Target{Limit: 3, Unit: "ms"}, "≤ 3 ms ✗"},
		{Target{Limit: 0.25, Unit: "ms", Met: true}, "≤ 0.25 ms ✓"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestWriteReport(t *testing.T) {
	t.Parallel()
	r := testReport()
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"500/s", "≥ 600/s ✗", "≥ 400/s ✓", "0.62×", "triggerer holding 100,000 timers: RSS", "600 MiB", "≤ 512 MiB ✗", "claimed at 20,000/s", "just before Submit"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Ratios != r.Ratios || len(back.Targets) != len(r.Targets) || back.Timers[1] != r.Timers[1] {
		t.Errorf("JSON round trip lost something:\n%s", js.String())
	}
}

func TestStamp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	if err := benchtask.WriteStamp(dir, "ti.defer", now); err != nil {
		t.Fatal(err)
	}
	got, err := readStamp(dir, "ti.defer")
	if err != nil || !got.Equal(time.Unix(0, now.UnixNano())) {
		t.Errorf("readStamp = %v, %v; want %v", got, err, now)
	}
	if _, err := readStamp(dir, "missing"); err == nil {
		t.Error("readStamp of a missing stamp: no error")
	}
}

func TestRSS(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	rss, err := rssOf(os.Getpid())
	if err != nil || rss < 1<<20 {
		t.Errorf("rssOf(self) = %d, %v", rss, err)
	}
}

// TestServeNoop runs the raw handshake's protocol server against the Go
// SDK runtime, in process.
func TestServeNoop(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ran := make(chan struct{}, 1)
	rt := sdk.New()
	rt.Secret = "the-bench-secret"
	rt.Register("noop", func(context.Context, *sdk.Task) error { ran <- struct{}{}; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, ln.Addr().String(), "") }()
	if err := serveNoop(ln, 1, rt.Secret); err != nil {
		t.Fatalf("serveNoop: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("runtime: %v", err)
	}
	select {
	case <-ran:
	default:
		t.Error("the noop task did not run")
	}
}

func TestTracker(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := queue.New(ctx, natstest.Connect(t, natstest.RunServer(t)), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	kv := q.Bucket(queue.BucketTaskInstances)
	put := func(id string, st activity.State, reason string) {
		t.Helper()
		ti := &activity.TaskInstance{ID: id, State: st, Reason: reason}
		b, err := ti.MarshalRecord()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, id, b); err != nil {
			t.Fatal(err)
		}
	}
	put("before", activity.StateSuccess, "") // ended before the tracker started: loaded
	tr, err := startTracker(ctx, q.Bucket(queue.BucketTaskInstances))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.stop()

	// Ended before wait is called.
	put("a", activity.StateQueued, "")
	put("a", activity.StateSuccess, "")
	put("a", activity.StateSuccess, "") // a later write: counted once
	if ti, err := tr.succeeded(ctx, "a"); err != nil || ti.ID != "a" {
		t.Fatalf("succeeded(a) = %v, %v", ti, err)
	}
	// Ended while waited for.
	got := make(chan error, 1)
	go func() {
		_, err := tr.succeeded(ctx, "b")
		got <- err
	}()
	put("b", activity.StateRunning, "")
	put("b", activity.StateFailed, "exit status 1")
	var te *TaskError
	if err := <-got; !errors.As(err, &te) || te.State != activity.StateFailed || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("succeeded(b) = %v, want a TaskError for failed", err)
	}
	if _, err := tr.succeeded(ctx, "before"); err != nil {
		t.Errorf("succeeded(before) = %v", err)
	}
	if n := tr.ended.Load(); n != 3 {
		t.Errorf("ended = %d, want 3", n)
	}
	// Never ends: the context says when to give up.
	wctx, wcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer wcancel()
	if _, err := tr.wait(wctx, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait(never) = %v, want DeadlineExceeded", err)
	}
	// Stopped: waiting fails at once.
	tr.stop()
	if _, err := tr.wait(ctx, "c"); !errors.Is(err, errTrackerStopped) {
		t.Errorf("wait after stop = %v, want errTrackerStopped", err)
	}
}

func TestWriteAirflowReport(t *testing.T) {
	t.Parallel()
	r := &Report{Airflow: &AirflowStart{Tasks: 10, Prefork: Latency{N: 10, P50: 250, P99: 400}, Cold: Latency{N: 10, P50: 12900, P99: 19800},
		PythonSDK: &Latency{N: 10, P50: 281, P99: 400}, BareAirflowPython: Latency{P50: 21}, ImportTaskRunner: Latency{P50: 9900},
		ZygoteReadyS: 11.5, LoadAverage: "24.1 22.0 20.3"}}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"load average 24.1 22.0 20.3", "with prefork", "250 ms", "12.90 s", "51.60×", "1.12×", "11.5 s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestRecordState reads a record's own state, not a param's or a try's.
func TestRecordState(t *testing.T) {
	ti := activity.NewTaskInstance("x", activity.TaskSpec{Queue: "q", TaskID: `t","state":"failed`,
		Params: map[string]any{"state": "failed"}}, time.Now())
	ti.Tries = []activity.Try{{State: activity.StateFailed}}
	b, err := ti.MarshalRecord()
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := recordState(b); !ok || st != activity.StateQueued {
		t.Errorf("recordState = %q, %v; want queued", st, ok)
	}
	if st, ok := recordState([]byte(`{"id":"x", "state" : "running"}`)); !ok || st != activity.StateRunning {
		t.Errorf("recordState of spaced JSON = %q, %v; want running", st, ok)
	}
}

// A fleet child that ends on its own (its workers could not connect) is
// seen ended by the phase and by stop, which returns at once with its
// exit status, even while a process it started still holds its stdout:
// the fleet phase once hung there.
func TestFleetChildEndedEarlyStopsAtOnce(t *testing.T) {
	cmd := exec.Command("sh", "-c", "echo started; (sleep 3 &) ; exit 3")
	f, err := runFleetChild(cmd)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the child's end not seen")
	}
	t0 := time.Now()
	err = f.stop()
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("stop: %v, want the child's exit status 3", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("stop took %s after the child ended", d)
	}
}

// --cpuprofile-phase profiles only the phase it names, needs --cpuprofile,
// and says when no phase of that name ran.
func TestProfilePhase(t *testing.T) {
	if _, err := (Profile{Phase: "command tasks"}).Start(&Config{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("a phase without a file: %v, want ErrConfig", err)
	}
	file := filepath.Join(t.TempDir(), "cpu.prof")
	var cfg Config
	stop, err := (Profile{File: file, Phase: "command tasks"}).Start(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnThroughput("warm Go SDK tasks")() // another phase: not profiled
	cfg.OnThroughput("command tasks")()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("profile of the phase: %v, %v", st, err)
	}
	cfg = Config{}
	stop, err = (Profile{File: file, Phase: "nosuch"}).Start(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnThroughput("command tasks")()
	if err := stop(); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("a phase that never ran: %v, want an error naming it", err)
	}
}
