package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testRuntime is the path of the test SDK runtime, built once.
func testRuntime(t *testing.T) string {
	t.Helper()
	return testbin.MustBuild(t, "./worker/testdata/testruntime")
}

const waitTimeout = 20 * time.Second

type harness struct {
	t   *testing.T
	api *fakeAPI
	qc  *queue.Client
	w   *Worker

	mu   sync.Mutex
	logs map[string][]map[string]any // subject → records
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newHarness runs a NATS server, a fake Execution API and a started worker
// serving queue "default" (and any queues mod adds).
func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	return newHarnessQueue(t, queue.Config{}, mod)
}

// newHarnessQueue is newHarness with the queue client's config qcfg.
func newHarnessQueue(t *testing.T, qcfg queue.Config, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, api: newFakeAPI(t), logs: map[string][]map[string]any{}}
	srv := natstest.RunServer(t)
	nc := natstest.Connect(t, srv)
	// Provisioning and the worker's start are setup, not what is tested:
	// bounded generously (a loaded -race run once passed 20s provisioning).
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	var err error
	if h.qc, err = queue.New(ctx, nc, qcfg); err != nil {
		t.Fatal(err)
	}
	unsub, err := queuetest.Subscribe(nc, "log.>", func(m queuetest.Msg) {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, line := range strings.Split(strings.TrimSpace(string(m.Data)), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil {
				h.logs[m.Subject] = append(h.logs[m.Subject], rec)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	api, err := execution.NewClient(execution.ClientConfig{URL: h.api.srv.URL,
		HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Second}, RetryMax: 1, RetryWaitMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Queue: h.qc, API: api, Queues: []string{"default"}, Concurrency: 4,
		HeartbeatInterval: 100 * time.Millisecond, GracePeriod: 10 * time.Second, KillGrace: 500 * time.Millisecond,
		HandshakeTimeout: 10 * time.Second, FetchMaxWait: time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	if h.w, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := h.w.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return h
}

func (h *harness) publish(q string, data []byte, id string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := queuetest.Publish(ctx, h.qc.Conn(), queue.ActivitySubject(q), data, id); err != nil {
		h.t.Fatal(err)
	}
}

// execute registers a task instance with the API and publishes its
// ExecuteTask on q.
func (h *harness) execute(id, q string, ep activity.Entrypoint, fti fakeTI, mod func(*activity.ExecuteTask)) {
	h.t.Helper()
	ti := activity.TI{ID: id, DagID: "dag", TaskID: "task_" + id, RunID: "run1", MapIndex: -1, TryNumber: 1}
	fti.ti = ti
	h.api.add(fti)
	et := &activity.ExecuteTask{ID: id + ".1", Token: "workload-" + id, TI: ti, Queue: q, Entrypoint: ep,
		Params: map[string]any{"p": "v"}, QueuedAt: time.Now()}
	if mod != nil {
		mod(et)
	}
	data, err := activity.Activity{Kind: activity.KindExecuteTask, ExecuteTask: et}.Marshal()
	if err != nil {
		h.t.Fatal(err)
	}
	h.publish(q, data, et.ID)
}

func (h *harness) waitState(id string) execution.StateRequest {
	h.t.Helper()
	testbin.Eventually(h.t, waitTimeout, "state of "+id, func() bool { return len(h.api.statesOf(id)) > 0 })
	return h.api.statesOf(id)[0]
}

// logsOf returns the log records of try 1 of task instance id.
func (h *harness) logsOf(id string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for subj, recs := range h.logs {
		if strings.Contains(subj, "."+id+".") {
			out = append(out, recs...)
		}
	}
	return out
}

func (h *harness) findLog(id string, match func(map[string]any) bool) bool {
	for _, r := range h.logsOf(id) {
		if match(r) {
			return true
		}
	}
	return false
}

func (h *harness) waitLog(id, what string, match func(map[string]any) bool) {
	h.t.Helper()
	testbin.Eventually(h.t, waitTimeout, what, func() bool { return h.findLog(id, match) })
}

func event(logger, substr string) func(map[string]any) bool {
	return func(r map[string]any) bool {
		ev, _ := r["event"].(string)
		return (logger == "" || r["logger"] == logger) && strings.Contains(ev, substr)
	}
}

func wantState(t *testing.T, got execution.StateRequest, state activity.State, reasonPrefix string) {
	t.Helper()
	if got.State != state || !strings.HasPrefix(got.Reason, reasonPrefix) {
		t.Errorf("state = %s (%q), want %s (%q…)", got.State, got.Reason, state, reasonPrefix)
	}
}

func TestCommandSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.execute("ti-ok", "default", activity.Entrypoint{
		Command: []string{"sh", "-c", `echo "hello $TASKWIRE_TI_ID try $TASKWIRE_TRY_NUMBER of $TASKWIRE_MAX_TRIES $TASKWIRE_PARAMS $EXTRA"; echo oops >&2; echo "nats=${TASKWIRE_NATS_PASSWORD:-unset}"`},
		Env:     map[string]string{"EXTRA": "extra"},
	}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-ok"), activity.StateSuccess, "")
	// Logs are flushed before the state is reported.
	for _, c := range []struct{ logger, text string }{
		{"stdout", `hello ti-ok try 1 of 3 {"p":"v"} extra`},
		{"stderr", "oops"},
		{"stdout", "nats=unset"},
		{"worker", "starting try 1 on host"},
	} {
		if !h.findLog("ti-ok", event(c.logger, c.text)) {
			t.Errorf("no %s log line %q in %v", c.logger, c.text, h.logsOf("ti-ok"))
		}
	}
	for _, r := range h.logsOf("ti-ok") {
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r["timestamp"])); err != nil || r["level"] == nil {
			t.Errorf("log record %v lacks timestamp or level", r)
		}
	}
}

// TestKeepAliveCoversASlowRun: a …/run answered after more than three
// times the activity consumer's ack wait. The worker keeps the activity
// with InProgress meanwhile (the consumer's ack wait / 3), so JetStream does
// not deliver it again (another slot's second …/run) and the try runs once.
func TestKeepAliveCoversASlowRun(t *testing.T) {
	t.Parallel()
	h := newHarnessQueue(t, queue.Config{ActivityAckWait: time.Second}, nil)
	if h.w.inProgress != time.Second/3 {
		t.Fatalf("keep-alive interval %v, want the ack wait / 3", h.w.inProgress)
	}
	h.execute("ti-slow-run", "default", activity.Entrypoint{Command: []string{"true"}},
		fakeTI{runDelay: 3500 * time.Millisecond}, nil)
	wantState(t, h.waitState("ti-slow-run"), activity.StateSuccess, "")
	if n := h.api.runsOf("ti-slow-run"); n != 1 {
		t.Errorf("…/run called %d times, want 1", n)
	}
	// Delivered once: no redelivery while its …/run was answered (this
	// worker would drop one, another worker would run it again).
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cons, err := h.qc.ActivityConsumer(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	info, err := queuetest.ConsumerOf(ctx, cons)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 1 {
		t.Errorf("the activity was delivered %d times, want once (kept with InProgress while its …/run was answered)", info.Delivered.Consumer)
	}
}

func TestCommandFailureExitCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.execute("ti-exit", "default", activity.Entrypoint{Command: []string{"sh", "-c", "exit 3"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-exit"), activity.StateUpForRetry, "exit code 3")
	h.execute("ti-nocmd", "default", activity.Entrypoint{Command: []string{"/nonexistent/program"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-nocmd"), activity.StateUpForRetry, "start command:")
}

func sdkRuntime(t *testing.T, codec protocol.Codec, env map[string]string) Runtime {
	return Runtime{Command: []string{testRuntime(t), "-comm", "{comm_addr}", "-logs", "{logs_addr}"}, Codec: codec, Env: env}
}

func TestSDKRuntimeAPI(t *testing.T) {
	t.Parallel()
	for _, socket := range []string{SocketTCP, SocketUnix} {
		t.Run(socket, func(t *testing.T) {
			t.Parallel()
			testSDKRuntimeAPI(t, socket)
		})
	}
}

func testSDKRuntimeAPI(t *testing.T, socket string) {
	rt := sdkRuntime(t, protocol.CodecMsgpack, nil)
	rt.Socket = socket
	h := newHarness(t, func(c *Config) { c.Runtimes = map[string]Runtime{"default": rt} })
	h.api.vars["v1"] = "value-1"
	h.api.conns["db"] = activity.Connection{ConnID: "db", ConnType: "postgres", Password: "pw-12345"}
	h.execute("ti-api", "default", activity.Entrypoint{Task: "api"}, fakeTI{nextMethod: "resume_here"}, nil)
	wantState(t, h.waitState("ti-api"), activity.StateSuccess, "")

	if got := h.api.vars["v2"]; got != "written" {
		t.Errorf("variable v2 = %q, want written", got)
	}
	if got := h.api.xcoms["dag/run1/task_ti-api/k/-1"]; got != "xv" {
		t.Errorf("xcom = %v, want xv (%v)", got, h.api.xcoms)
	}
	checks := map[string]func(map[string]any) bool{
		"variable value": func(r map[string]any) bool { return r["event"] == "variable" && r["value"] == "value-1" },
		"missing variable is not_found": func(r map[string]any) bool {
			return r["event"] == "missing variable" && r["error"] == "not_found"
		},
		"xcom read back":      func(r map[string]any) bool { return r["event"] == "xcom" && r["value"] == "xv" },
		"missing xcom is nil": func(r map[string]any) bool { return r["event"] == "xcom missing" && r["is_nil"] == true },
		"password masked":     event("testruntime", "connection password ***"),
		"secret masked":       event("testruntime", "the secret is ***"),
		"stdout masked":       event("stdout", "stdout says ***"),
	}
	checks["startup has next method"] = func(r map[string]any) bool {
		s, _ := r["startup"].(string)
		return r["event"] == "startup" && strings.Contains(s, `"next_method":"resume_here"`) &&
			strings.Contains(s, `"entrypoint":"api"`) && strings.Contains(s, `"p":"v"`) && strings.Contains(s, `"max_tries":3`)
	}
	for name, match := range checks {
		if !h.findLog("ti-api", match) {
			t.Errorf("%s: not in logs %v", name, h.logsOf("ti-api"))
		}
	}
	for _, r := range h.logsOf("ti-api") {
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "topsecret") || strings.Contains(string(b), "pw-12345") {
			t.Errorf("secret leaked into log %s", b)
		}
	}
}

func TestSDKRuntimeOutcomes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"default", "jsonq"}
		c.Runtimes = map[string]Runtime{
			"default": sdkRuntime(t, protocol.CodecMsgpack, nil),
			"jsonq":   sdkRuntime(t, protocol.CodecJSON, nil),
		}
	})
	cases := []struct {
		task, queue  string
		state        activity.State
		reasonPrefix string
	}{
		{"noop", "jsonq", activity.StateSuccess, ""},
		{"fail", "default", activity.StateFailed, "boom"},
		{"retry", "default", activity.StateUpForRetry, "try again"},
		{"exit3", "default", activity.StateUpForRetry, "exit code 3"},
		{"defer", "jsonq", activity.StateDeferred, ""},
		{"linger", "default", activity.StateSuccess, ""},
		{"garbage", "default", activity.StateUpForRetry, "protocol error:"},
		{"sleep", "jsonq", activity.StateUpForRetry, "execution timeout after 300ms"},
	}
	for _, c := range cases {
		fti := fakeTI{}
		if c.task == "sleep" {
			fti.timeout = activity.Duration(300 * time.Millisecond) // the run response's timeout
		}
		h.execute("ti-"+c.task, c.queue, activity.Entrypoint{Task: c.task}, fti, nil)
	}
	for _, c := range cases {
		t.Run(c.task, func(t *testing.T) {
			got := h.waitState("ti-" + c.task)
			wantState(t, got, c.state, c.reasonPrefix)
			if c.state == activity.StateDeferred {
				if got.Trigger == nil || got.Trigger.ID == "" || got.Trigger.Classpath != "taskwire.triggers.TimeDelta" ||
					got.Trigger.Timeout.D() != time.Minute || got.NextMethod != "resume" || got.NextKwargs["n"] != "1" {
					t.Errorf("deferral = %+v trigger %+v", got, got.Trigger)
				}
			}
		})
	}
}

func TestRuntimeExitsBeforeHandshake(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"default", "slow"}
		c.HandshakeTimeout = time.Second
		c.Runtimes = map[string]Runtime{
			"default": {Command: []string{"sh", "-c", "echo cannot start: missing dependency >&2; exit 3", "{comm_addr}", "{logs_addr}"}},
			"slow":    {Command: []string{"sh", "-c", "exec sleep 300", "{comm_addr}", "{logs_addr}"}},
		}
	})
	h.execute("ti-early", "default", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
	got := h.waitState("ti-early")
	wantState(t, got, activity.StateUpForRetry, "runtime exited before handshake: exit code 3")
	if !strings.Contains(got.Reason, "missing dependency") {
		t.Errorf("reason %q lacks the stderr tail", got.Reason)
	}
	// An entrypoint command runs directly, whatever the queue's runtime.
	h.execute("ti-direct", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-direct"), activity.StateSuccess, "")
	h.execute("ti-silent", "slow", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-silent"), activity.StateUpForRetry, "runtime did not connect within 1s")
}

// pidFromFile waits for a pid written by a task.
func pidFromFile(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testbin.Eventually(t, waitTimeout, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

func TestExecutionTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pid")
	h.execute("ti-slow", "default", activity.Entrypoint{
		Command: []string{"sh", "-c", `sleep 300 & echo $! > "$0"; trap '' TERM; wait`, pidFile},
	}, fakeTI{}, func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(700 * time.Millisecond) })
	grandchild := pidFromFile(t, pidFile)
	wantState(t, h.waitState("ti-slow"), activity.StateUpForRetry, "execution timeout after 700ms")
	if testbin.Alive(grandchild) {
		t.Errorf("grandchild %d still alive", grandchild)
	}
	h.waitLog("ti-slow", "kill line", event("worker", "killed: execution timeout"))
}

func TestHeartbeatConflictKillsTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pid")
	h.execute("ti-hb", "default", activity.Entrypoint{
		Command: []string{"sh", "-c", `echo $$ > "$0"; exec sleep 300`, pidFile},
	}, fakeTI{hbStatus: http.StatusConflict}, nil)
	pid := pidFromFile(t, pidFile)
	testbin.Eventually(t, waitTimeout, "task killed", func() bool { return !testbin.Alive(pid) })
	testbin.Eventually(t, waitTimeout, "worker idle", func() bool { return h.w.Running() == 0 })
	h.waitLog("ti-hb", "kill line", event("worker", "heartbeat refused"))
	if got := h.api.statesOf("ti-hb"); len(got) != 0 {
		t.Errorf("reported %+v after a heartbeat conflict", got)
	}
	if h.api.heartbeatsOf("ti-hb") != 1 {
		t.Errorf("heartbeats = %d, want 1", h.api.heartbeatsOf("ti-hb"))
	}
}

func TestHeartbeats(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.GracePeriod = 100 * time.Millisecond })
	h.execute("ti-beat", "default", activity.Entrypoint{Command: []string{"sleep", "300"}},
		fakeTI{}, func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(30 * time.Second) })
	testbin.Eventually(t, waitTimeout, "3 heartbeats", func() bool { return h.api.heartbeatsOf("ti-beat") >= 3 })
}

// TestHeartbeatsNotRecordedDoNotKeepATry: the worker times the kill of a
// try cut off from the API from its last heartbeat that reached the
// record; one the executor accepted without a write counts from the
// recorded one's age before it (Taskwire-Heartbeat-Age-Ms), or the try
// could outlive the executor's zombie threshold.
func TestHeartbeatsNotRecordedDoNotKeepATry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	const zombie = 2 * time.Second
	start := time.Now()
	h.execute("ti-recorded", "default", activity.Entrypoint{Command: []string{"sleep", "300"}},
		fakeTI{zombie: activity.Duration(zombie)}, nil)
	// Every answer says the recorded heartbeat is older than the limit.
	h.execute("ti-old", "default", activity.Entrypoint{Command: []string{"sleep", "300"}},
		fakeTI{zombie: activity.Duration(zombie), hbAge: zombie}, nil)
	testbin.Eventually(t, waitTimeout, "the try whose recorded heartbeat is old killed", func() bool {
		return len(h.api.statesOf("ti-old")) > 0
	})
	if got := h.api.statesOf("ti-old"); got[0].State != activity.StateUpForRetry || !strings.Contains(got[0].Reason, "Execution API") {
		t.Errorf("try whose recorded heartbeat is old reported %+v, want up_for_retry: no heartbeat reached the Execution API", got[0])
	}
	if took := time.Since(start); took > zombie+3*time.Second {
		t.Errorf("killed after %s, the executor's threshold is %s", took, zombie)
	}
	// The other, whose heartbeats are recorded, lives on past the threshold.
	time.Sleep(time.Until(start.Add(zombie + 500*time.Millisecond)))
	if got := h.api.statesOf("ti-recorded"); len(got) != 0 {
		t.Errorf("try with recorded heartbeats reported %+v", got)
	}
}

func TestMalformedActivityDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.Concurrency = 1 })
	dead := make(chan queuetest.Msg, 10)
	unsub, err := queuetest.Subscribe(h.qc.Conn(), queue.DeadLetterSubject("default"), func(m queuetest.Msg) {
		select {
		case dead <- m:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	h.publish("default", []byte(`{"kind":"ExecuteTask","nonsense":true}`), "bad.1")
	h.execute("ti-after", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-after"), activity.StateSuccess, "")
	select {
	case m := <-dead:
		if !strings.Contains(string(m.Data), "nonsense") && !strings.Contains(fmt.Sprint(m.Header), "malformed") {
			t.Errorf("dead letter %q %v does not carry the activity", m.Data, m.Header)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no dead letter")
	}
}

func TestRunConflictDropsActivity(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.execute("ti-taken", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{runStatus: http.StatusConflict}, nil)
	h.execute("ti-next", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-next"), activity.StateSuccess, "")
	cons, err := h.qc.ActivityConsumer(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, waitTimeout, "activity acked", func() bool {
		info, err := queuetest.ConsumerOf(context.Background(), cons)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if n := h.api.runsOf("ti-taken"); n != 1 {
		t.Errorf("run calls = %d, want 1", n)
	}
	if got := h.api.statesOf("ti-taken"); len(got) != 0 {
		t.Errorf("states = %+v, want none", got)
	}
}

func TestStopReportsRunningTaskForRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) { c.GracePeriod = 300 * time.Millisecond })
	h.execute("ti-long", "default", activity.Entrypoint{Command: []string{"sh", "-c", "trap '' TERM; sleep 300"}}, fakeTI{}, nil)
	testbin.Eventually(t, waitTimeout, "task running", func() bool { return h.w.Running() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(t, h.waitState("ti-long"), activity.StateUpForRetry, "worker shutting down")
	if err := h.w.Stop(ctx); err != nil {
		t.Errorf("second stop: %v", err)
	}
}

func TestRunCallback(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ti := activity.TI{ID: "ti-cb", DagID: "dag", TaskID: "t", RunID: "run1", MapIndex: -1, TryNumber: 2}
	for _, c := range []struct{ id, script string }{
		{"cb.ok", `echo "callback $TASKWIRE_CALLBACK state $TASKWIRE_STATE reason $TASKWIRE_REASON"`},
		{"cb.fail", "exit 4"},
	} {
		data, err := activity.Activity{Kind: activity.KindRunCallback, RunCallback: &activity.RunCallback{
			ID: c.id, Token: "workload-ti-cb", On: "on_failure", TI: ti, State: activity.StateFailed, Reason: "boom",
			Queue: "default", Entrypoint: activity.Entrypoint{Command: []string{"sh", "-c", c.script}},
		}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		h.publish("default", data, c.id)
	}
	h.waitLog("ti-cb", "callback output", event("stdout", "callback on_failure state failed reason boom"))
	h.waitLog("ti-cb", "callback failure", event("worker", "on_failure callback failed: up_for_retry (exit code 4)"))
	cons, err := h.qc.ActivityConsumer(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, waitTimeout, "callbacks acked", func() bool {
		info, err := queuetest.ConsumerOf(context.Background(), cons)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if h.api.runsOf("ti-cb") != 0 || len(h.api.statesOf("ti-cb")) != 0 {
		t.Error("a callback called run or state")
	}
}

func TestStateDirKillsOrphans(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orphan := exec.Command("sleep", "300")
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- orphan.Wait() }()
	pid := orphan.Process.Pid
	start, _ := procStartTime(pid)
	if err := os.WriteFile(filepath.Join(dir, "pgid-"+strconv.Itoa(pid)), fmt.Appendf(nil, "%d %d ti-old\n", pid, start), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.StateDir, c.GracePeriod = dir, 100*time.Millisecond })
	select {
	case <-waited:
	case <-time.After(waitTimeout):
		_ = orphan.Process.Kill()
		<-waited
		t.Fatal("orphan not killed")
	}
	// A second worker on the same directory is refused.
	w2, err := New(Config{Queue: h.qc, API: h.w.cfg.API, Queues: []string{"default"}, StateDir: dir, Logger: h.w.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second worker on the state dir: err = %v", err)
	}
	_ = w2.Stop(context.Background())
	// Running tasks are recorded while they run.
	pidFile := filepath.Join(t.TempDir(), "pid")
	h.execute("ti-rec", "default", activity.Entrypoint{Command: []string{"sh", "-c", `echo $$ > "$0"; exec sleep 300`, pidFile}},
		fakeTI{}, func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(30 * time.Second) })
	task := pidFromFile(t, pidFile)
	// The worker records the process once it has started, which the task
	// may beat in writing its pid file.
	testbin.Eventually(t, waitTimeout, "running task recorded", func() bool {
		_, err := os.Stat(filepath.Join(dir, "pgid-"+strconv.Itoa(task)))
		return err == nil
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	api, err := execution.NewClient(execution.ClientConfig{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	qc := &queue.Client{}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no_queue_client", Config{API: api, Queues: []string{"a"}}, "Queue"},
		{"no_api", Config{Queue: qc, Queues: []string{"a"}}, "API"},
		{"no_queues", Config{Queue: qc, API: api}, "at least one queue"},
		{"bad_queue", Config{Queue: qc, API: api, Queues: []string{"Bad Queue"}}, "must match"},
		{"runtime_for_unserved_queue", Config{Queue: qc, API: api, Queues: []string{"a"}, Runtimes: map[string]Runtime{"b": {Command: []string{"true"}}}}, "not served"},
		{"runtime_missing_program", Config{Queue: qc, API: api, Queues: []string{"a"}, Runtimes: map[string]Runtime{"a": {Command: []string{"/no/such/runtime", "{comm_addr}"}}}}, "queue \"a\""},
		{"runtime_env_without_command", Config{Queue: qc, API: api, Queues: []string{"a"}, Runtimes: map[string]Runtime{"a": {Env: map[string]string{"X": "1"}}}}, "no command"},
		{"queue_without_runtime", Config{Queue: qc, API: api, Queues: []string{"a", "b"}, RequireRuntimes: true, Runtimes: map[string]Runtime{"a": {}}}, "queue \"b\" has no runtime"},
		{"bad_worker_id", Config{Queue: qc, API: api, Queues: []string{"a"}, ID: "a b"}, "worker id"},
		{"bad_socket", Config{Queue: qc, API: api, Queues: []string{"a"}, Runtimes: map[string]Runtime{"a": {Command: []string{"sh"}, Socket: "udp"}}}, "socket"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New = %v, want an error containing %q", err, c.want)
			}
		})
	}
	if _, err := New(Config{Queue: qc, API: api, Queues: []string{"a"}, Runtimes: map[string]Runtime{"a": {Command: []string{"sh", "-c", "x {comm_addr} {logs_addr}"}}}}); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestReadLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLineDefault+10)
	cases := []struct {
		name, in string
		want     []string
	}{
		{"plain", "a\nb\n", []string{"a", "b"}},
		{"no_trailing_newline", "a\nb", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"long", long + "\n", []string{long[:maxLineDefault], long[maxLineDefault:]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			readLines(io.NopCloser(strings.NewReader(c.in)), func(s string) { got = append(got, s) })
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("got %d lines %.40q, want %d %.40q", len(got), got, len(c.want), c.want)
			}
		})
	}
}

// A …/run answered 404 is tried again shortly (the record may not be
// visible yet on that executor), then dead-lettered.
func TestRunNotFoundIsRetriedThenDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.execute("ti-missing", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{runStatus: http.StatusNotFound}, nil)
	cons, err := h.qc.ActivityConsumer(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, waitTimeout, "the activity to be settled", func() bool {
		info, err := queuetest.ConsumerOf(context.Background(), cons)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && h.api.runsOf("ti-missing") >= notFoundDeliveries
	})
	if n := h.api.runsOf("ti-missing"); n != notFoundDeliveries {
		t.Errorf("run calls = %d, want %d", n, notFoundDeliveries)
	}
}

// TestManyQueuesWaitForDoorbells: one slot, 30 queues. An idle queue waits
// for its doorbell instead of holding the slot in a pull, so a task on any
// queue starts at once; with the slot passed round the queues' pulls
// instead, a task would wait for the others' pulls to expire (up to 30 ×
// 100 ms), and with a doorbell missed, for the backstop (2 s).
func TestManyQueuesWaitForDoorbells(t *testing.T) {
	t.Parallel()
	queues := make([]string, 30)
	for i := range queues {
		queues[i] = fmt.Sprintf("q%02d", i)
	}
	h := newHarness(t, func(c *Config) { c.Queues, c.Concurrency = queues, 1 })
	const limit = time.Second
	for i := range 20 {
		id := fmt.Sprintf("ti-bell-%d", i)
		start := time.Now()
		h.execute(id, queues[(i*7)%len(queues)], activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
		wantState(t, h.waitState(id), activity.StateSuccess, "")
		if d := time.Since(start); d > limit {
			t.Errorf("task %d on %s took %s to run, want < %s", i, queues[(i*7)%len(queues)], d, limit)
		}
	}
}

// TestConsumerMadeAgain: the queue's consumer keeps its state in the
// server's memory, so a NATS restart loses it; a worker whose consumer is
// gone makes it again and goes on pulling.
func TestConsumerMadeAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.execute("ti-before", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-before"), activity.StateSuccess, "")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := queuetest.DeleteConsumer(ctx, h.qc.Conn(), queue.StreamActivities, queue.ActivityConsumerName("default")); err != nil {
		t.Fatal(err)
	}
	h.execute("ti-after", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-after"), activity.StateSuccess, "")
}

// A task's process that moved into a group of its own (as Airflow's
// supervisor moves its task process) is still in the task's session: a
// later worker on the same state directory kills it too.
func TestStateDirKillsOrphansInOtherGroups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The child moves into a process group of its own, as Airflow's supervisor's task process does.
	leader := exec.Command("python3", "-c", `import os, sys, time
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    # Written only once the child is in its own group, so the test never reads it before.
    open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()) + "\n")
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(300)
    os._exit(0)
time.sleep(300)`, pidFile)
	leader.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	sid := leader.Process.Pid
	start, _ := procStartTime(sid)
	child := pidFromFile(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	if pg, _ := syscall.Getpgid(child); pg == sid {
		t.Fatalf("the child stayed in the leader's group %d", sid)
	}
	if err := os.WriteFile(filepath.Join(dir, "pgid-"+strconv.Itoa(sid)), fmt.Appendf(nil, "%d %d ti-old\n", sid, start), 0o600); err != nil {
		t.Fatal(err)
	}
	// The leader dies as a task's runner dies with its worker; its child lives on.
	_ = leader.Process.Kill()
	_ = leader.Wait()
	if err := syscall.Kill(child, 0); err != nil {
		t.Fatalf("child gone before the worker started: %v", err)
	}
	newHarness(t, func(c *Config) { c.StateDir, c.GracePeriod = dir, 100*time.Millisecond })
	testbin.Eventually(t, waitTimeout, "the orphan in another group killed", func() bool {
		_, ok := procSession(child) // gone, or a zombie of its reaper
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
		return !ok || strings.Contains(string(st), ") Z ")
	})
}

// TestLogServerTakesABacklogConnection: a runtime that connected to its
// logs address, wrote its lines and ended before the worker's accept loop
// took the connection (a loaded machine schedules the loop late: a Go SDK
// task's value=42 line went missing so in CI) still has its lines shipped:
// stop takes what waits in the listener's backlog before it closes it.
// The accept loop is not started here, so every connection is in the
// backlog when stop runs.
func TestLogServerTakesABacklogConnection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const id, secret = "ti-backlog", "s3cret"
	tl := newTaskLog(h.qc, id, 1, slog.New(slog.DiscardHandler))
	s := &logServer{w: h.w, ln: ln, tl: tl, secret: secret, tiID: id, conns: map[net.Conn]bool{}}
	for i := range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf(`{"event": "line %d from a connection never accepted", "logger": "task"}`, i)
		if _, err := c.Write(append(protocol.LogStreamHeader{Secret: secret}.MarshalLine(), line+"\n"...)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	s.stop(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := tl.close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		h.waitLog(id, "the backlog connection's line", event("task", fmt.Sprintf("line %d from a connection never accepted", i)))
	}
}

// A command task that ends leaving a process in another group of its
// session (as Airflow's supervisor's task process is) has it killed by the
// session sweep; tasks that end together share one scan of /proc.
func TestEndedTasksLeftoversInOtherGroupsAreSwept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newHarness(t, func(c *Config) { c.Concurrency = 4 })
	const n = 4
	script := `import os, sys, time
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()) + "\n")
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(300)
    os._exit(0)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
`
	before := h.w.sweeper.scans.Load()
	for i := range n {
		id := "ti-left-" + strconv.Itoa(i)
		pidFile := filepath.Join(dir, id)
		h.execute(id, "default", activity.Entrypoint{Command: []string{"python3", "-c", script, pidFile}}, fakeTI{}, nil)
	}
	var kids []int
	for i := range n {
		id := "ti-left-" + strconv.Itoa(i)
		wantState(t, h.waitState(id), activity.StateSuccess, "")
		kid := pidFromFile(t, filepath.Join(dir, id))
		t.Cleanup(func() { _ = syscall.Kill(kid, syscall.SIGKILL) })
		kids = append(kids, kid)
	}
	for _, kid := range kids {
		testbin.Eventually(t, waitTimeout, "the leftover in another group killed", func() bool {
			_, ok := procSession(kid) // gone, or a zombie of its reaper
			st, _ := os.ReadFile("/proc/" + strconv.Itoa(kid) + "/stat")
			return !ok || strings.Contains(string(st), ") Z ")
		})
	}
	if scans := h.w.sweeper.scans.Load() - before; scans < 1 || scans > n {
		t.Errorf("%d scans of /proc for %d ended tasks", scans, n)
	}
}

// The sweeper scans /proc once for the sessions that ended within its
// delay, and not at all when none did.
func TestSessionSweeperScansOnceForManyEnds(t *testing.T) {
	t.Parallel()
	var s sessionSweeper
	s.flush()
	if s.scans.Load() != 0 {
		t.Fatalf("a flush with nothing pending scanned")
	}
	for sid := range 50 {
		s.add(1_000_000 + sid) // no such sessions: nothing to kill
	}
	testbin.Eventually(t, waitTimeout, "the sweep", func() bool { return s.scans.Load() > 0 })
	s.flush()
	if got := s.scans.Load(); got != 1 {
		t.Errorf("%d scans for 50 ends added at once, want 1", got)
	}
}
