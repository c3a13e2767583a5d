package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/queue"
)

// warmRuntimes are the SDKs with a warm mode: the same test tasks (noop,
// block, stubborn, api, defer with method resume) in each.
var warmRuntimes = []string{"go", "python", "java"}

// forEachWarmRuntime runs test once per SDK, in parallel subtests.
func forEachWarmRuntime(t *testing.T, test func(t *testing.T, sdk string)) {
	t.Parallel()
	for _, sdk := range warmRuntimes {
		t.Run(sdk, func(t *testing.T) {
			t.Parallel()
			test(t, sdk)
		})
	}
}

// warmCommand returns the command of the warm test runtime of sdk:
// testdata/warmruntime (Go), testdata/pywarm/tasks.py run with this
// checkout's Python SDK, testdata/javawarm/WarmTasks.java compiled against
// the Java SDK's jar.
func warmCommand(t *testing.T, sdk string) ([]string, map[string]string, protocol.Codec) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	switch sdk {
	case "go":
		bin := testbin.MustBuild(t, "./worker/testdata/warmruntime")
		return []string{bin, "--comm", "{comm_addr}", "--logs", "{logs_addr}"}, nil, protocol.CodecMsgpack
	case "python":
		py := testbin.Python(t)
		return []string{py, filepath.Join(root, "worker", "testdata", "pywarm", "tasks.py"), "--comm", "{comm_addr}", "--logs", "{logs_addr}"},
			map[string]string{"PYTHONPATH": filepath.Join(root, "sdk", "python", "src"), "PYTHONDONTWRITEBYTECODE": "1"},
			protocol.CodecMsgpack
	case "java":
		cp := javaWarmClasspath(t)
		return []string{"java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", cp, "WarmTasks",
			"--comm", "{comm_addr}", "--logs", "{logs_addr}"}, nil, protocol.CodecJSON
	}
	t.Fatalf("no warm runtime %q", sdk)
	return nil, nil, 0
}

var javaWarm = sync.OnceValues(func() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	jar := filepath.Join(root, "sdk", "java", "target", "taskwire-sdk.jar")
	if j := os.Getenv(testbin.JavaSDKJarEnv); j != "" {
		jar = j
	}
	dir, err := os.MkdirTemp("", "taskwire-javawarm-")
	if err != nil {
		return "", err
	}
	out, err := exec.Command("javac", "-encoding", "UTF-8", "--release", "17", "-cp", jar, "-d", dir,
		filepath.Join(root, "worker", "testdata", "javawarm", "WarmTasks.java")).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("javac WarmTasks.java against %s (build the jar with mvn -q -o -f sdk/java package -DskipTests): %v\n%s", jar, err, out)
	}
	return dir + string(os.PathListSeparator) + jar, nil
})

func javaWarmClasspath(t *testing.T) string {
	t.Helper()
	cp, err := javaWarm()
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// warmHarness serves queue "warm" with the warm test runtime of sdk.
func warmHarness(t *testing.T, sdk string, warm Warm, mods ...func(*Config)) *harness {
	t.Helper()
	argv, env, codec := warmCommand(t, sdk)
	return newHarness(t, func(c *Config) {
		c.Queues = []string{"warm"}
		c.Concurrency = 8
		c.Runtimes = map[string]Runtime{"warm": {Command: argv, Env: env, Codec: codec, Warm: &warm}}
		for _, m := range mods {
			m(c)
		}
	})
}

var startedPID = regexp.MustCompile(`started pid=(\d+)`)

// waitStarted waits for the "started pid=N" line of task id and returns N.
func (h *harness) waitStarted(id string) int {
	h.t.Helper()
	pid := 0
	testbin.Eventually(h.t, waitTimeout, id+" started", func() bool {
		for _, r := range h.logsOf(id) {
			ev, _ := r["event"].(string)
			if m := startedPID.FindStringSubmatch(ev); m != nil {
				pid, _ = strconv.Atoi(m[1])
				return true
			}
		}
		return false
	})
	return pid
}

func TestWarmCrashFailsOnlyItsTasks(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 4})
		ids := []string{"ti-c1", "ti-c2", "ti-c3", "ti-c4"}
		for _, id := range ids {
			h.execute(id, "warm", activity.Entrypoint{Task: "block"}, fakeTI{}, nil)
		}
		pid := h.waitStarted(ids[0])
		for _, id := range ids[1:] {
			if got := h.waitStarted(id); got != pid {
				t.Fatalf("%s runs in process %d, want %d (one warm process)", id, got, pid)
			}
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("warm runtime process %d crashed: killed by signal killed", pid)
		for _, id := range ids {
			wantState(t, h.waitState(id), activity.StateUpForRetry, want)
			h.waitLog(id, "crash line", event("worker", want))
		}
		// The process is replaced: the next task runs.
		h.execute("ti-after", "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
		wantState(t, h.waitState("ti-after"), activity.StateSuccess, "")
		if got := warmMetric(t, h.w, MetricWarmCrashes, ""); got != 1 {
			t.Errorf("%s = %v, want 1", MetricWarmCrashes, got)
		}
		testbin.Eventually(t, waitTimeout, "one process, no task running", func() bool {
			return warmMetric(t, h.w, MetricWarmProcesses, "") == 1 && warmMetric(t, h.w, MetricWarmTasks, "") == 0
		})
	})
}

func TestWarmCancelOneAmongSeveral(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 4})
		h.execute("ti-k1", "warm", activity.Entrypoint{Task: "block"}, fakeTI{}, nil)
		h.execute("ti-k2", "warm", activity.Entrypoint{Task: "block"}, fakeTI{}, nil)
		pid := h.waitStarted("ti-k1")
		h.waitStarted("ti-k2")
		// A task that stops when cancelled: its process and sibling go on.
		h.execute("ti-k3", "warm", activity.Entrypoint{Task: "block"}, fakeTI{},
			func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(time.Second) })
		wantState(t, h.waitState("ti-k3"), activity.StateUpForRetry, "execution timeout after 1s")
		h.waitLog("ti-k3", "its cancellation seen by the task", event("task", "cancelled"))
		if !testbin.Alive(pid) {
			t.Fatal("the warm process died with a cancelled task")
		}
		for _, id := range []string{"ti-k1", "ti-k2"} {
			if n := len(h.api.statesOf(id)); n != 0 {
				t.Errorf("%s reported %v; it still runs", id, h.api.statesOf(id))
			}
		}
		// A task that ignores its cancellation: its process is killed after the
		// kill grace, and its siblings are retried with the reason.
		h.execute("ti-k4", "warm", activity.Entrypoint{Task: "stubborn"}, fakeTI{},
			func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(time.Second) })
		wantState(t, h.waitState("ti-k4"), activity.StateUpForRetry, "execution timeout after 1s")
		want := fmt.Sprintf("warm runtime process %d was killed: task ti-k4 did not stop", pid)
		for _, id := range []string{"ti-k1", "ti-k2"} {
			wantState(t, h.waitState(id), activity.StateUpForRetry, want)
		}
		testbin.Eventually(t, waitTimeout, "process gone", func() bool { return !testbin.Alive(pid) })
		if k, c := warmMetric(t, h.w, MetricWarmKills, ""), warmMetric(t, h.w, MetricWarmCrashes, ""); k != 1 || c != 0 {
			t.Errorf("%s = %v, %s = %v; want 1 kill, no crash", MetricWarmKills, k, MetricWarmCrashes, c)
		}
	})
}

func TestWarmRecycleAfterMaxTasks(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 2, MaxTasks: 2})
		const n = 7
		for i := range n {
			h.execute(fmt.Sprintf("ti-r%d", i), "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
		}
		pids := map[float64]int{}
		for i := range n {
			id := fmt.Sprintf("ti-r%d", i)
			wantState(t, h.waitState(id), activity.StateSuccess, "")
			h.waitLog(id, "noop line", event("task", "noop"))
			for _, r := range h.logsOf(id) {
				if pid, ok := r["pid"].(float64); ok {
					pids[pid]++
				}
			}
		}
		if len(pids) < (n+1)/2 {
			t.Errorf("tasks ran in processes %v: want at most 2 tasks in each", pids)
		}
		for pid, c := range pids {
			if c > 2 {
				t.Errorf("process %v ran %d tasks, above max_tasks 2", pid, c)
			}
		}
		if got := warmMetric(t, h.w, MetricWarmRecycles, "max_tasks"); got < 3 {
			t.Errorf("%s{reason=max_tasks} = %v, want ≥ 3 for %d tasks", MetricWarmRecycles, got, n)
		}
	})
}

func TestWarmTokenAndMaskPerTask(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 4})
		ids := []string{"ti-a", "ti-b", "ti-c", "ti-d"}
		h.api.mu.Lock()
		for _, id := range ids {
			h.api.vars[id] = "secret-of-" + id
		}
		h.api.mu.Unlock()
		for i, id := range ids {
			task := "api"
			if sdk == "python" && i%2 == 1 {
				task = "apisync" // a plain def task, on the runtime's thread pool
			}
			h.execute(id, "warm", activity.Entrypoint{Task: task}, fakeTI{}, nil)
		}
		for _, id := range ids {
			wantState(t, h.waitState(id), activity.StateSuccess, "")
			h.waitLog(id, "masked value", event("task", "the value is ***"))
			for _, r := range h.logsOf(id) {
				if strings.Contains(fmt.Sprint(r), "secret-of-") {
					t.Errorf("%s: unmasked secret in %v", id, r)
				}
			}
		}
		h.api.mu.Lock()
		defer h.api.mu.Unlock()
		for _, id := range ids {
			got := h.api.varTokens[id]
			if len(got) != 1 || got[0] != "Bearer exec-"+id {
				t.Errorf("variable %s read with %q, want only task %s's own token", id, got, id)
			}
		}
	})
}

func TestWarmDeferAndResume(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 2})
		h.execute("ti-d1", "warm", activity.Entrypoint{Task: "defer"}, fakeTI{}, nil)
		got := h.waitState("ti-d1")
		if got.State != activity.StateDeferred || got.Trigger == nil || got.NextMethod != "resume" {
			t.Fatalf("state %+v, want deferred to resume", got)
		}
		h.execute("ti-d2", "warm", activity.Entrypoint{Task: "defer"},
			fakeTI{nextMethod: "resume", nextKwargs: map[string]any{"n": "1", "event": "fired"}}, nil)
		wantState(t, h.waitState("ti-d2"), activity.StateSuccess, "")
		h.waitLog("ti-d2", "resumed line", event("task", "resumed with 1"))
	})
}

func TestWarmIdleTimeout(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 2, IdleTimeout: 300 * time.Millisecond})
		pidOf := func(id string) int {
			wantState(t, h.waitState(id), activity.StateSuccess, "")
			h.waitLog(id, "noop line", event("task", "noop"))
			for _, r := range h.logsOf(id) {
				if pid, ok := r["pid"].(float64); ok {
					return int(pid)
				}
			}
			t.Fatalf("%s: no pid logged", id)
			return 0
		}
		h.execute("ti-i1", "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
		first := pidOf("ti-i1")
		testbin.Eventually(t, waitTimeout, "idle process ended", func() bool { return !testbin.Alive(first) })
		if got := warmMetric(t, h.w, MetricWarmRecycles, "idle_timeout"); got < 1 {
			t.Errorf("%s{reason=idle_timeout} = %v, want ≥ 1", MetricWarmRecycles, got)
		}
		h.execute("ti-i2", "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
		if second := pidOf("ti-i2"); second == first {
			t.Errorf("second task ran in the idle process %d", first)
		}
	})
}

// A task waiting for a slot of a busy warm pool waits past HandshakeTimeout.
func TestWarmWaitsForBusySlot(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		// An interpreter or a JVM may take longer than 500ms to connect.
		handshake, timeout := 500*time.Millisecond, 2*time.Second
		if sdk != "go" {
			handshake, timeout = 3*time.Second, 5*time.Second
		}
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 1}, func(c *Config) { c.HandshakeTimeout = handshake })
		h.execute("ti-w1", "warm", activity.Entrypoint{Task: "block"}, fakeTI{},
			func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(timeout) })
		h.waitStarted("ti-w1")
		h.execute("ti-w2", "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
		wantState(t, h.waitState("ti-w1"), activity.StateUpForRetry, "execution timeout after "+timeout.String())
		wantState(t, h.waitState("ti-w2"), activity.StateSuccess, "")
	})
}

// warmMetric returns the value of the warm metric name of queue "warm"
// (and reason, when given) that w's WarmCollector reports.
func warmMetric(t *testing.T, w *Worker, name, reason string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(w.WarmCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "queue" && l.GetValue() != "warm") || (l.GetName() == "reason" && l.GetValue() != reason) {
					continue metrics
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s{queue=warm,reason=%q}", name, reason)
	return 0
}

// A warm queue whose runtime does not serve warm mode (it exits at once,
// as a runtime without it does once its one try is over) is refused at
// worker start, with an error that says so.
func TestWarmRefusedWithoutWarmRuntime(t *testing.T) {
	t.Parallel()
	srv := natstest.RunServer(t)
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	qc, err := queue.New(ctx, nc, queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := execution.NewClient(execution.ClientConfig{URL: newFakeAPI(t).srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Queue: qc, API: api, Queues: []string{"warm"}, Concurrency: 1,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Runtimes: map[string]Runtime{"warm": {Command: []string{"sh", "-c", "echo one try only >&2"}, Warm: &Warm{}}}})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Start(ctx)
	if err == nil {
		_ = w.Stop(ctx)
		t.Fatal("worker started a warm queue whose runtime does not serve warm mode")
	}
	for _, want := range []string{"queue warm", "does not serve warm mode", protocol.EnvWarmTasks, "remove warm:", "one try only"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("start error %q does not say %q", err, want)
		}
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("start error %v is not ErrConfig", err)
	}
	if err := w.Stop(ctx); err != nil {
		t.Errorf("stop after a refused start: %v", err)
	}
}

// TestWarmPythonManyConcurrentRequests: one warm Python process runs many
// tries at once, each with several requests in flight on its connection
// (from the event loop and from pool threads), beside plain def tries on
// the thread pool: every request is framed whole and answered to its try
// (a lead from a 10,000-sleeper bench run that once saw a malformed
// request frame).
func TestWarmPythonManyConcurrentRequests(t *testing.T) {
	t.Parallel()
	const slots, tries = 48, 96
	h := warmHarness(t, "python", Warm{Processes: 1, TasksPerProcess: slots}, func(c *Config) { c.Concurrency = slots })
	ids := make([]string, tries)
	h.api.mu.Lock()
	for i := range ids {
		ids[i] = fmt.Sprintf("ti-m%d", i)
		h.api.vars[ids[i]] = "value-of-" + ids[i]
	}
	h.api.mu.Unlock()
	for i, id := range ids {
		task := "many"
		if i%3 == 2 {
			task = "apisync"
		}
		h.execute(id, "warm", activity.Entrypoint{Task: task}, fakeTI{}, nil)
	}
	for _, id := range ids {
		wantState(t, h.waitState(id), activity.StateSuccess, "")
	}
	h.api.mu.Lock()
	defer h.api.mu.Unlock()
	for i, id := range ids {
		if want := map[bool]int{true: 1, false: 8}[i%3 == 2]; len(h.api.varTokens[id]) != want {
			t.Errorf("variable %s read %d times, want %d", id, len(h.api.varTokens[id]), want)
		}
		for _, tok := range h.api.varTokens[id] {
			if tok != "Bearer exec-"+id {
				t.Errorf("variable %s read with %q, want only task %s's own token", id, tok, id)
			}
		}
	}
	if got := warmMetric(t, h.w, MetricWarmKills, ""); got != 0 {
		t.Errorf("%s = %v: a protocol error killed the process", MetricWarmKills, got)
	}
}
