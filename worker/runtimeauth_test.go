package worker

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
)

// gatedRuntime wraps the test runtime in a shell that announces the comm
// and logs addresses in dir/addr and waits for dir/go before it runs the
// runtime: the test connects its intruders first.
func gatedRuntime(t *testing.T, dir string) Runtime {
	script := `printf '%s %s' "$TASKWIRE_COMM_ADDR" "$TASKWIRE_LOGS_ADDR" > "$1/addr.tmp" && mv "$1/addr.tmp" "$1/addr"
while [ ! -e "$1/go" ]; do sleep 0.02; done
exec "$2" -comm "$3" -logs "$4"`
	return Runtime{Command: []string{"sh", "-c", script, "sh", dir, testRuntime(t), "{comm_addr}", "{logs_addr}"}}
}

// waitAddrs waits for the addresses a gated runtime announces.
func waitAddrs(t *testing.T, dir string) (comm, logs string) {
	t.Helper()
	var b []byte
	testbin.Eventually(t, waitTimeout, "runtime announces its addresses", func() bool {
		var err error
		b, err = os.ReadFile(filepath.Join(dir, "addr"))
		return err == nil
	})
	f := strings.Fields(string(b))
	if len(f) != 2 {
		t.Fatalf("addresses %q", b)
	}
	return f[0], f[1]
}

func dialRuntime(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(sdkNetwork(addr), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sdkNetwork(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "unix"
	}
	return "tcp"
}

// readAll reads what the worker sends on c until it closes it.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Errorf("intruder read: %v (got %d bytes)", err, len(b))
	}
	return b
}

func isReset(err error) bool {
	return err == nil || strings.Contains(err.Error(), "reset")
}

// An intruder that connects to a try's comm address before the runtime
// (silent, or with a wrong secret) gets not a byte of StartupDetails, and
// the real runtime still runs its task; intruders on the logs address do
// not get their lines into the task's log.
func TestRuntimeCommIntruderGetsNothing(t *testing.T) {
	t.Parallel()
	for _, socket := range []string{SocketTCP, SocketUnix} {
		t.Run(socket, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			rt := gatedRuntime(t, dir)
			rt.Socket = socket
			h := newHarness(t, func(c *Config) { c.Runtimes = map[string]Runtime{"default": rt} })
			h.execute("ti-intruded", "default", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
			comm, logs := waitAddrs(t, dir)

			silent := dialRuntime(t, comm)
			wrong := dialRuntime(t, comm)
			if _, err := wrong.Write(protocol.AuthFrame(strings.Repeat("0", 64))); err != nil {
				t.Fatal(err)
			}
			garbage := dialRuntime(t, comm)
			if _, err := garbage.Write([]byte{0x7f, 0xff, 0xff, 0xff}); err != nil {
				t.Fatal(err)
			}
			inject := dialRuntime(t, logs)
			if _, err := inject.Write([]byte(`{"secret":"` + strings.Repeat("1", 64) + `"}` + "\n" +
				`{"event":"INJECTED with a wrong secret","level":"error"}` + "\n")); err != nil {
				t.Fatal(err)
			}
			bare := dialRuntime(t, logs)
			if _, err := bare.Write([]byte(`{"event":"INJECTED without a header","level":"error"}` + "\n")); err != nil {
				t.Fatal(err)
			}
			// The wrong and garbage ones are refused at once, while the
			// runtime has not even started.
			for name, c := range map[string]net.Conn{"wrong secret": wrong, "garbage": garbage, "bare log": bare, "wrong log secret": inject} {
				if b := readAll(t, c); len(b) != 0 {
					t.Errorf("%s intruder got %d bytes: %q", name, len(b), b)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			wantState(t, h.waitState("ti-intruded"), activity.StateSuccess, "")
			if b := readAll(t, silent); len(b) != 0 {
				t.Errorf("silent intruder got %d bytes: %q", len(b), b)
			}
			h.waitLog("ti-intruded", "the runtime's own log line", event("testruntime", "startup"))
			for _, r := range h.logsOf("ti-intruded") {
				if ev, _ := r["event"].(string); strings.Contains(ev, "INJECTED") {
					t.Errorf("injected line in the task's log: %v", r)
				}
			}
			if n := h.w.authRejected.comm.Load(); n < 3 {
				t.Errorf("comm connections refused = %d, want ≥ 3", n)
			}
			if n := h.w.authRejected.logs.Load(); n < 2 {
				t.Errorf("log connections refused = %d, want ≥ 2", n)
			}
			if v := warmMetric(t, h.w, MetricRuntimeAuthRejected, ""); v < 3 {
				t.Errorf("%s = %v", MetricRuntimeAuthRejected, v)
			}
		})
	}
}

// A runtime that does not present the secret (an SDK from before it) ends
// its try with a reason that says so, not a hang.
func TestRuntimeWithoutSecretFailsClearly(t *testing.T) {
	t.Parallel()
	rt := sdkRuntime(t, protocol.CodecMsgpack, map[string]string{"TESTRUNTIME_NO_SECRET": "1"})
	h := newHarness(t, func(c *Config) {
		c.HandshakeTimeout = 2 * time.Second
		c.Runtimes = map[string]Runtime{"default": rt}
	})
	h.execute("ti-old-sdk", "default", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
	got := h.waitState("ti-old-sdk")
	// The auth deadline is the handshake timeout here (2s): the try ends
	// either as the runtime exits on its closed connection or as the
	// handshake times out.
	if got.State != activity.StateUpForRetry || (!strings.HasPrefix(got.Reason, "runtime exited (exit code 70) without authenticating on the comm channel") &&
		!strings.HasPrefix(got.Reason, "runtime did not authenticate on the comm channel within 2s")) {
		t.Errorf("state %s, reason %q", got.State, got.Reason)
	}
	for _, want := range []string{"1 connection(s) without the runtime's secret", "older than the comm secret", protocol.EnvCommSecret} {
		if !strings.Contains(got.Reason, want) {
			t.Errorf("reason %q lacks %q", got.Reason, want)
		}
	}
}

// A try whose runtime exited ends within the kill grace even when a
// grandchild that escaped its session keeps the comm and logs sockets
// open.
func TestRuntimeExitedWhileGrandchildHoldsSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	h := newHarness(t, func(c *Config) { c.Runtimes = map[string]Runtime{"default": sdkRuntime(t, protocol.CodecMsgpack, nil)} })
	start := time.Now()
	h.execute("ti-escape", "default", activity.Entrypoint{Task: "escape"}, fakeTI{}, func(et *activity.ExecuteTask) {
		et.Params = map[string]any{"pid_file": pidFile}
	})
	pid := pidFromFile(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	got := h.waitState("ti-escape")
	took := time.Since(start)
	wantState(t, got, activity.StateUpForRetry, "exit code 3")
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the grandchild is gone (%v): the test did not hold the socket", err)
	}
	// The kill grace is 500ms: the try ends after at most two of them
	// (output pipes, then the comm read), plus the runtime's start.
	if took > 10*time.Second {
		t.Errorf("the try took %s to end", took)
	}
}

// A warm process takes only connections that present its secret: an
// intruder on its comm address gets no task, one on its logs address
// injects nothing, and the tasks run (Go, Python and Java warm runtimes).
func TestWarmCommIntruderGetsNothing(t *testing.T) {
	forEachWarmRuntime(t, func(t *testing.T, sdk string) {
		h := warmHarness(t, sdk, Warm{Processes: 1, TasksPerProcess: 2})
		var p *warmProc
		testbin.Eventually(t, waitTimeout, "a warm process", func() bool {
			wp := h.w.pools["warm"]
			wp.mu.Lock()
			defer wp.mu.Unlock()
			for q := range wp.live {
				p = q
			}
			return p != nil
		})
		commAddr, logsAddr := p.commLn.Addr().String(), p.logsLn.Addr().String()
		var intruders []net.Conn
		for range 3 {
			intruders = append(intruders, dialRuntime(t, commAddr))
		}
		wrong := dialRuntime(t, commAddr)
		if _, err := wrong.Write(protocol.AuthFrame(strings.Repeat("3", 64))); err != nil {
			t.Fatal(err)
		}
		inject := dialRuntime(t, logsAddr)
		if _, err := inject.Write([]byte(`{"mux":true,"secret":"` + strings.Repeat("2", 64) + `"}` + "\n" +
			"ti-wi-0\t1\t" + `{"event":"INJECTED","level":"error"}` + "\n")); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			id := "ti-wi-" + strconv.Itoa(i)
			h.execute(id, "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
			wantState(t, h.waitState(id), activity.StateSuccess, "")
		}
		for i := range 4 {
			for _, r := range h.logsOf("ti-wi-" + strconv.Itoa(i)) {
				if ev, _ := r["event"].(string); strings.Contains(ev, "INJECTED") {
					t.Errorf("injected line in the task's log: %v", r)
				}
			}
		}
		if b := readAll(t, inject); len(b) != 0 {
			t.Errorf("log intruder got %q", b)
		}
		for i, c := range append(intruders, wrong) {
			if b := readAll(t, c); len(b) != 0 {
				t.Errorf("intruder %d got %d bytes", i, len(b))
			}
		}
		if n := h.w.authRejected.comm.Load(); n != 4 {
			t.Errorf("comm connections refused = %d, want 4", n)
		}
		if n := h.w.authRejected.logs.Load(); n != 1 {
			t.Errorf("log connections refused = %d, want 1", n)
		}
	})
}

// A prefork zygote's child gets its secret through the zygote (the fork
// request's environment): an intruder that connects first to its comm and
// logs addresses gets nothing, and the child's task runs.
func TestPreforkChildCommIntruderGetsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rt := preforkRuntime(t)
	rt.Prefork.Modules = []string{"pfairflow"}
	rt.Command = []string{testbin.Python(t), "-m", "pfairflow"}
	rt.Airflow = &AirflowRuntime{DagsFolder: t.TempDir()}
	rt.Env = map[string]string{"PFAIRFLOW_DIR": dir}
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"pf"}
		c.Runtimes = map[string]Runtime{"pf": rt}
	})
	z := h.w.zygotes["pf"]
	testbin.Eventually(t, waitTimeout, "zygote ready", func() bool { return z.current() != nil })
	h.execute("ti-pf-intruded", "pf", activity.Entrypoint{Task: "t"}, fakeTI{}, nil)
	comm, logs := waitAddrs(t, dir)
	silent := dialRuntime(t, comm)
	inject := dialRuntime(t, logs)
	if _, err := inject.Write([]byte(`{"event":"INJECTED","level":"error"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantState(t, h.waitState("ti-pf-intruded"), activity.StateSuccess, "")
	if b := readAll(t, silent); len(b) != 0 {
		t.Errorf("silent intruder got %d bytes: %q", len(b), b)
	}
	if b := readAll(t, inject); len(b) != 0 {
		t.Errorf("log intruder got %q", b)
	}
	want := "forked ppid=" + strconv.Itoa(z.currentPid())
	h.waitLog("ti-pf-intruded", "the child's line", event("pfairflow", want))
	for _, r := range h.logsOf("ti-pf-intruded") {
		if ev, _ := r["event"].(string); strings.Contains(ev, "INJECTED") {
			t.Errorf("injected line in the task's log: %v", r)
		}
	}
	if n := h.w.authRejected.comm.Load(); n != 1 {
		t.Errorf("comm connections refused = %d, want 1", n)
	}
}

// A warm runtime whose connections do not present the secret gets no task;
// the task is retried with a reason that says why.
func TestWarmRuntimeWithoutSecretFailsClearly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"warm"}
		c.HandshakeTimeout = 2 * time.Second
		c.Runtimes = map[string]Runtime{"warm": {Command: []string{"bash", "-c",
			`a=$0; exec 3<>/dev/tcp/${a%:*}/${a##*:}; printf "\x00\x00\x00\x05hello" >&3; exec sleep 60`, "{comm_addr}"}, Warm: &Warm{}}}
	})
	h.execute("ti-warm-old", "warm", activity.Entrypoint{Task: "noop"}, fakeTI{}, nil)
	got := h.waitState("ti-warm-old")
	wantState(t, got, activity.StateUpForRetry, "no warm runtime process of queue warm authenticated on the comm channel within 2s: 1 connection(s)")
	if !strings.Contains(got.Reason, protocol.EnvCommSecret) {
		t.Errorf("reason %q does not name %s", got.Reason, protocol.EnvCommSecret)
	}
}
