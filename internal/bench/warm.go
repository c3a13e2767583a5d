package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// queueGoWarm is the Go SDK runtime (the task binary in ModeSDK) in warm
// mode: one process per worker, Concurrency tasks at once.
const queueGoWarm = "go-warm"

// The warm Python and Java SDK runtimes (Config.Python, Config.JavaSDKJar):
// a no-op task each, one process per worker, Concurrency tasks at once.
const (
	queuePyWarm   = "python-warm"
	queueJavaWarm = "java-warm"
	// queueSleepers is the sleepers phase's warm Python runtime, on a worker
	// of its own with Config.Sleepers slots.
	queueSleepers = "python-sleepers"
)

// Warm is the warm-mode phase: no-op SDK tasks run in warm processes. An
// SDK the run had no runtime for (no python, no Java SDK jar) is absent.
type Warm struct {
	Go     *WarmRuntime `json:"go,omitempty"`
	Python *WarmRuntime `json:"python,omitempty"`
	Java   *WarmRuntime `json:"java,omitempty"`
	// Sleepers is the sleepers phase (Config.Sleepers).
	Sleepers *Sleepers `json:"sleepers,omitempty"`
}

// Sleepers is many async def Python tasks awaiting at once in one warm
// process of one worker.
type Sleepers struct {
	Tasks  int     `json:"tasks"`
	SleepS float64 `json:"sleep_s"`
	// Seconds is from the first submit to the last success.
	Seconds float64 `json:"seconds"`
	// PeakRunning is the most tasks running at once (their running record
	// written, their terminal one not yet: asleep, or about to be);
	// AllStartedS is from the first submit to the last running record.
	PeakRunning int     `json:"peak_running"`
	AllStartedS float64 `json:"all_started_s"`
	// CPUMillisPerTask is the bench process's CPU (the cluster, not the
	// Python runtime) per task, over the phase; RuntimeCPUMillisPerTask
	// the Python runtime's.
	CPUMillisPerTask        float64 `json:"cpu_ms_per_task"`
	RuntimeCPUMillisPerTask float64 `json:"runtime_cpu_ms_per_task"`
	// WorkerRSSMiB is the bench process's peak resident memory (the whole
	// cluster: NATS, executor, workers); RuntimeRSSMiB the Python
	// process's, read while all tasks were sleeping.
	WorkerRSSMiB  float64 `json:"bench_process_peak_rss_mib"`
	RuntimeRSSMiB float64 `json:"runtime_rss_mib"`
}

// pyWarmScript is the warm Python runtime's program: no-op tasks, an async
// def one and a sleeper.
const pyWarmScript = `import asyncio
import taskwire

app = taskwire.App()


@app.task("noop")
async def noop(ctx):
    pass


@app.task("sleep")
async def sleep(ctx):
    await asyncio.sleep(float(ctx.params["seconds"]))


if __name__ == "__main__":
    app.main()
`

// javaWarmSource is the warm Java runtime's program (run from source by
// the java launcher).
const javaWarmSource = `import io.taskwire.sdk.TaskRuntime;

public final class BenchWarm {
    public static void main(String[] args) {
        new TaskRuntime().register("noop", ctx -> null).main(args);
    }
}
`

// warmSpec is a no-op task of queue q.
func warmSpec(q string) activity.TaskSpec {
	return activity.TaskSpec{Queue: q, TaskID: "bench_warm", Entrypoint: activity.Entrypoint{Task: "noop"}}
}

// WarmRuntime is one SDK's warm figures.
type WarmRuntime struct {
	Throughput
	// Latency is queued → success of one task at a time (submit to the
	// executor's end_date).
	Latency Latency `json:"latency"`
}

// goWarmSpec is a no-op task of the warm Go SDK runtime.
func goWarmSpec() activity.TaskSpec {
	return activity.TaskSpec{Queue: queueGoWarm, TaskID: "bench_sdk_warm", Entrypoint: activity.Entrypoint{Task: "noop"}}
}

// oneAtATime runs n tasks of spec one after the other and summarizes their
// queued → success times.
func oneAtATime(ctx context.Context, c *cluster, spec activity.TaskSpec, n int, done func()) (Latency, error) {
	ds := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		ti, err := c.api.Submit(ctx, spec)
		if err != nil {
			return Latency{}, fmt.Errorf("submit task %d: %w", i, err)
		}
		if _, err := c.tracker.succeeded(ctx, ti.ID); err != nil {
			return Latency{}, err
		}
		ds = append(ds, time.Since(start))
		done()
	}
	return summarize(ds), nil
}

// warmSDKs runs the throughput and one-at-a-time latency phases of the warm
// runtime of queue q.
func warmSDK(ctx context.Context, c *cluster, cfg Config, name, q string,
	tp func(string, activity.TaskSpec) (Throughput, error), phase func(string, int) *atomic.Int64) (*WarmRuntime, error) {
	w := &WarmRuntime{}
	var err error
	if w.Throughput, err = tp("warm "+name+" SDK tasks", warmSpec(q)); err != nil {
		return nil, fmt.Errorf("warm %s sdk throughput: %w", name, err)
	}
	l := phase("warm "+name+" SDK latency", cfg.LatencyTasks)
	if w.Latency, err = oneAtATime(ctx, c, warmSpec(q), cfg.LatencyTasks, func() { l.Add(1) }); err != nil {
		return nil, fmt.Errorf("warm %s sdk latency: %w", name, err)
	}
	return w, nil
}

// sleepers runs cfg.Sleepers async def Python tasks, each awaiting
// cfg.SleepFor, at once in one warm process of a worker of their own, and
// reports the time to finish them all and the memory it took.
func sleepers(ctx context.Context, c *cluster, cfg Config, dir string, done *atomic.Int64) (*Sleepers, error) {
	// A script of its own, so its process is found by its command line.
	script := filepath.Join(dir, "bench_sleepers.py")
	if err := os.WriteFile(script, []byte(pyWarmScript), 0o644); err != nil {
		return nil, err
	}
	saved := c.pyScript
	c.pyScript = script
	w, err := c.startWorker(ctx, cfg, "bench-sleepers", []string{queueSleepers})
	c.pyScript = saved
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop(context.WithoutCancel(ctx)) }()

	spec := activity.TaskSpec{Queue: queueSleepers, TaskID: "bench_sleep", Entrypoint: activity.Entrypoint{Task: "sleep"},
		Params: map[string]any{"seconds": cfg.SleepFor.Seconds()}}
	var peakRuntime, peakSelf int64
	var runtimeCPU time.Duration
	sample := func() {
		if pid := pidOf(script); pid > 0 {
			if r, err := rssOf(pid); err == nil {
				peakRuntime = max(peakRuntime, r)
			}
			if t, err := cpuOf(pid); err == nil {
				runtimeCPU = max(runtimeCPU, t)
			}
		}
		if r, err := rssOf(os.Getpid()); err == nil {
			peakSelf = max(peakSelf, r)
		}
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	base, started0 := c.tracker.ended.Load(), c.tracker.started.Load()
	c.tracker.resetPeak()
	begin := time.Now()
	var allStarted atomic.Int64 // nanoseconds after begin
	progressed := make(chan struct{})
	go func() {
		defer close(progressed)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				done.Store(c.tracker.ended.Load() - base)
				if allStarted.Load() == 0 && c.tracker.started.Load()-started0 >= int64(cfg.Sleepers) {
					allStarted.Store(int64(time.Since(begin)))
				}
			}
		}
	}()
	tp, err := throughput(ctx, c, spec, cfg.Sleepers, cfg.Inflight)
	close(stop)
	<-sampled
	<-progressed
	sample() // the runtime's CPU once all are done
	if err != nil {
		return nil, err
	}
	return &Sleepers{Tasks: cfg.Sleepers, SleepS: cfg.SleepFor.Seconds(), Seconds: tp.Seconds,
		PeakRunning: int(c.tracker.peak.Load()), AllStartedS: time.Duration(allStarted.Load()).Seconds(),
		CPUMillisPerTask:        tp.CPUMillisPerTask,
		RuntimeCPUMillisPerTask: float64(runtimeCPU.Microseconds()) / 1000 / float64(cfg.Sleepers),
		WorkerRSSMiB:            float64(peakSelf) / (1 << 20), RuntimeRSSMiB: float64(peakRuntime) / (1 << 20)}, nil
}

// cpuOf is the user + system CPU time process pid has used.
func cpuOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The fields after the command (in parentheses, which may hold spaces).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// pidOf returns the pid of a process of this user whose command line has
// arg, or 0.
func pidOf(arg string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				return pid
			}
		}
	}
	return 0
}

// SDKRuntimes resolves cmd/bench's --python and --java-sdk-jar flags into
// Config.Python, PythonPath and JavaSDKJar: "" means the checkout's
// .venv/bin/python and sdk/java/target/taskwire-sdk.jar (the checkout is
// the directory with go.mod at or above the working directory) when they
// exist, "none" none. PythonPath is the checkout's sdk/python/src, so the
// Python runtime runs this tree's SDK.
func SDKRuntimes(python, jar string) (py, pyPath, javaJar string) {
	root := moduleRoot()
	at := func(parts ...string) string {
		if root == "" {
			return ""
		}
		p := filepath.Join(append([]string{root}, parts...)...)
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	switch python {
	case "none":
	case "":
		py = at(".venv", "bin", "python")
	default:
		py = python
	}
	if py != "" {
		pyPath = at("sdk", "python", "src")
	}
	switch jar {
	case "none":
	case "":
		if _, err := exec.LookPath("java"); err == nil {
			javaJar = at("sdk", "java", "target", "taskwire-sdk.jar")
		}
	default:
		if a, err := filepath.Abs(jar); err == nil {
			jar = a
		}
		javaJar = jar
	}
	return py, pyPath, javaJar
}

// moduleRoot is the nearest directory at or above the working directory
// with a go.mod, or "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// SleeperFlags registers the sleepers phase's flags, and --warm-only, on fs.
func SleeperFlags(fs *flag.FlagSet, cfg *Config) {
	fs.BoolVar(&cfg.WarmOnly, "warm-only", false, "run the raw limits, dispatch latency and flat command phase, then only the warm phases (and the sleepers); read the JSON's warm object and ratios.warm_go_per_command")
	fs.IntVar(&cfg.Sleepers, "sleepers", 0, "async def Python tasks run at once, each sleeping --sleep-for, in one warm process of one worker (e.g. 10000; one file descriptor each in the bench and in the runtime); none by default")
	fs.DurationVar(&cfg.SleepFor, "sleep-for", 5*time.Second, "each sleeper's wait")
	fs.BoolVar(&cfg.SleepersOnly, "sleepers-only", false, "run the sleepers phase alone (needs --sleepers)")
}
