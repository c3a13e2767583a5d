package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// preforkRuntime is the command runtime with a zygote whose module is the
// test task module pftask (testdata/prefork).
func preforkRuntime(t *testing.T) Runtime {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return Runtime{Prefork: &Prefork{Python: testbin.Python(t), Preload: []string{"json"}, Modules: []string{"pftask"},
		Env: map[string]string{"PYTHONPATH": filepath.Join(root, "sdk", "python", "src") + string(os.PathListSeparator) +
			filepath.Join(root, "worker", "testdata", "prefork"), "PYTHONDONTWRITEBYTECODE": "1"},
		RestartDelay: 50 * time.Millisecond}}
}

func preforkHarness(t *testing.T) (*harness, *zygote) {
	t.Helper()
	return preforkHarnessWith(t, preforkRuntime(t))
}

// preforkHarnessWith is a harness whose queue "pf" has runtime rt, its
// zygote ready.
func preforkHarnessWith(t *testing.T, rt Runtime) (*harness, *zygote) {
	t.Helper()
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"pf"}
		c.Runtimes = map[string]Runtime{"pf": rt}
	})
	z := h.w.zygotes["pf"]
	testbin.Eventually(t, waitTimeout, "zygote ready", func() bool { return z.current() != nil })
	return h, z
}

func (z *zygote) currentPid() int {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cur == nil {
		return 0
	}
	return z.pid
}

var startedLine = regexp.MustCompile(`started pid=(\d+) ppid=(\d+) sid=(\d+) cwd=(\S*) env=(\S*)`)

// started waits for task id's "started" line: its pid, parent and session.
func (h *harness) started(id string) (pid, ppid, sid int) {
	h.t.Helper()
	testbin.Eventually(h.t, waitTimeout, id+" started", func() bool {
		for _, r := range h.logsOf(id) {
			if m := startedLine.FindStringSubmatch(fmt.Sprint(r["event"])); m != nil {
				pid, _ = strconv.Atoi(m[1])
				ppid, _ = strconv.Atoi(m[2])
				sid, _ = strconv.Atoi(m[3])
				return true
			}
		}
		return false
	})
	return pid, ppid, sid
}

func pf(args ...string) activity.Entrypoint {
	return activity.Entrypoint{Command: append([]string{"python3", "-m", "pftask"}, args...), Env: map[string]string{"PFTEST": "yes"}}
}

func TestPreforkRunsTasksForked(t *testing.T) {
	t.Parallel()
	h, z := preforkHarness(t)
	zpid := z.currentPid()
	h.execute("ti-pf-ok", "pf", pf("noop"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-ok"), activity.StateSuccess, "")
	pid, ppid, sid := h.started("ti-pf-ok")
	if ppid != zpid || sid != pid {
		t.Errorf("task pid %d ppid %d sid %d; want a child of the zygote %d leading its own session", pid, ppid, sid, zpid)
	}
	if !h.findLog("ti-pf-ok", event("stdout", "env=yes")) {
		t.Errorf("the task's environment did not reach the child: %v", h.logsOf("ti-pf-ok"))
	}

	h.execute("ti-pf-exit", "pf", pf("exit", "3"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-exit"), activity.StateUpForRetry, "exit code 3")
	h.waitLog("ti-pf-exit", "stderr", event("stderr", "failing"))

	h.execute("ti-pf-raise", "pf", pf("raise"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-raise"), activity.StateUpForRetry, "exit code 1")
	h.waitLog("ti-pf-raise", "traceback", event("stderr", "RuntimeError: boom from pftask"))

	// A command that is not python -m of one of its modules starts cold.
	h.execute("ti-pf-cold", "pf", activity.Entrypoint{Command: []string{"sh", "-c", "echo started pid=$$ ppid=$PPID sid=0 cwd=x env=x"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-cold"), activity.StateSuccess, "")
	if _, ppid, _ := h.started("ti-pf-cold"); ppid == zpid {
		t.Errorf("a shell command ran in the zygote")
	}
}

// TestPreforkEntryFunction: a preloaded module that defines prefork_main
// has it called in the child, with the task's argv and environment (the
// zygote's own variables gone), instead of being run again as __main__;
// its return value is the exit code. Without spares and with them.
func TestPreforkEntryFunction(t *testing.T) {
	t.Parallel()
	for _, spare := range []int{0, 2} {
		t.Run(fmt.Sprintf("spare %d", spare), func(t *testing.T) {
			t.Parallel()
			rt := preforkRuntime(t)
			rt.Prefork.Preload = []string{"json", "pfentry"}
			rt.Prefork.Modules = []string{"pftask", "pfentry"}
			rt.Prefork.Env["PFZYGOTEONLY"] = "1"
			rt.Prefork.Spare = spare
			h, z := preforkHarnessWith(t, rt)
			zpid := z.currentPid()
			entry := func(code string) activity.Entrypoint {
				return activity.Entrypoint{Command: []string{"python3", "-m", "pfentry", code}, Env: map[string]string{"PFTEST": "yes"}}
			}

			h.execute("ti-entry-ok", "pf", entry("0"), fakeTI{}, nil)
			wantState(t, h.waitState("ti-entry-ok"), activity.StateSuccess, "")
			const want = "entry argv=0 env=yes zygote_only=False pid="
			if !h.findLog("ti-entry-ok", event("stdout", want)) || !h.findLog("ti-entry-ok", event("stdout", fmt.Sprintf("ppid=%d", zpid))) {
				t.Errorf("no %q line from a child of the zygote %d: %v", want, zpid, h.logsOf("ti-entry-ok"))
			}
			if h.findLog("ti-entry-ok", event("stdout", "ran as __main__")) {
				t.Errorf("the module ran again as __main__: %v", h.logsOf("ti-entry-ok"))
			}

			h.execute("ti-entry-exit", "pf", entry("3"), fakeTI{}, nil)
			wantState(t, h.waitState("ti-entry-exit"), activity.StateUpForRetry, "exit code 3")
		})
	}
}

// TestPreforkSpareChildren: a zygote with spare children keeps them forked
// ahead, each leading its own session; a task runs in one of them, with its
// own environment, output and exit status, and the zygote forks the next.
func TestPreforkSpareChildren(t *testing.T) {
	t.Parallel()
	rt := preforkRuntime(t)
	rt.Prefork.Spare = 2
	h, z := preforkHarnessWith(t, rt)
	zpid := z.currentPid()
	var spares []int
	testbin.Eventually(t, waitTimeout, "two spares", func() bool { spares = childrenOf(t, zpid); return len(spares) == 2 })
	for _, p := range spares {
		if sid := sessionOf(t, p); sid != p {
			t.Errorf("spare %d: session %d, want its own", p, sid)
		}
	}

	h.execute("ti-pf-spare", "pf", pf("noop"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-spare"), activity.StateSuccess, "")
	pid, ppid, sid := h.started("ti-pf-spare")
	if !slices.Contains(spares, pid) || ppid != zpid || sid != pid {
		t.Errorf("task pid %d ppid %d sid %d; want one of the spares %v of the zygote %d", pid, ppid, sid, spares, zpid)
	}
	if !h.findLog("ti-pf-spare", event("stdout", "env=yes")) {
		t.Errorf("the task's environment did not reach the spare: %v", h.logsOf("ti-pf-spare"))
	}
	h.execute("ti-pf-spare-exit", "pf", pf("exit", "3"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-spare-exit"), activity.StateUpForRetry, "exit code 3")
	testbin.Eventually(t, waitTimeout, "two spares again", func() bool {
		now := childrenOf(t, zpid)
		return len(now) == 2 && !slices.Contains(now, pid)
	})

	// A spare that dies unused is replaced.
	victim := childrenOf(t, zpid)[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, waitTimeout, "the dead spare replaced", func() bool {
		now := childrenOf(t, zpid)
		return len(now) == 2 && !slices.Contains(now, victim)
	})
	h.execute("ti-pf-spare-after", "pf", pf("noop"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-spare-after"), activity.StateSuccess, "")
}

// procStat is /proc/PID/stat's fields after the command: state, ppid,
// pgrp, session, …; nil when the process is gone.
func procStat(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	f := procStat(pid)
	if len(f) < 4 {
		t.Fatalf("no /proc/%d/stat", pid)
	}
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// childrenOf lists the live (not zombie) child processes of pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(p); len(f) > 1 && f[0] != "Z" && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

func TestPreforkTaskKilled(t *testing.T) {
	t.Parallel()
	h, _ := preforkHarness(t)
	h.execute("ti-pf-kill", "pf", pf("block"), fakeTI{}, nil)
	pid, _, _ := h.started("ti-pf-kill")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wantState(t, h.waitState("ti-pf-kill"), activity.StateUpForRetry, "killed by signal killed")
}

func TestPreforkCancelKillsSession(t *testing.T) {
	t.Parallel()
	h, z := preforkHarness(t)
	file := filepath.Join(t.TempDir(), "grandchild")
	// (A timeout long enough for the task to write its grandchild's pid on
	// a loaded machine.)
	h.execute("ti-pf-cancel", "pf", pf("family", file), fakeTI{},
		func(et *activity.ExecuteTask) { et.ExecutionTimeout = activity.Duration(8 * time.Second) })
	pid, ppid, _ := h.started("ti-pf-cancel")
	if ppid != z.currentPid() {
		t.Fatalf("task's parent %d is not the zygote %d", ppid, z.currentPid())
	}
	gc := pidFromFile(t, file)
	wantState(t, h.waitState("ti-pf-cancel"), activity.StateUpForRetry, "execution timeout after 8s")
	testbin.Eventually(t, waitTimeout, "task and grandchild gone", func() bool { return !testbin.Alive(pid) && !testbin.Alive(gc) })
}

func TestPreforkZygoteKilledFailsTasksAndRestarts(t *testing.T) {
	t.Parallel()
	h, z := preforkHarness(t)
	zpid := z.currentPid()
	dir := t.TempDir()
	var pids, gcs []int
	for i, id := range []string{"ti-pf-z1", "ti-pf-z2"} {
		file := filepath.Join(dir, fmt.Sprint(i))
		h.execute(id, "pf", pf("family", file), fakeTI{}, nil)
		pid, _, _ := h.started(id)
		pids = append(pids, pid)
		gcs = append(gcs, pidFromFile(t, file))
	}
	if err := syscall.Kill(zpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ti-pf-z1", "ti-pf-z2"} {
		wantState(t, h.waitState(id), activity.StateUpForRetry, "prefork zygote died")
	}
	testbin.Eventually(t, waitTimeout, "the tasks' processes gone", func() bool {
		for _, p := range append(pids, gcs...) {
			if testbin.Alive(p) {
				return false
			}
		}
		return true
	})
	// Back, with a new zygote; a task started meanwhile ran cold.
	testbin.Eventually(t, waitTimeout, "zygote restarted", func() bool { p := z.currentPid(); return p != 0 && p != zpid })
	h.execute("ti-pf-after", "pf", pf("noop"), fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-after"), activity.StateSuccess, "")
	if _, ppid, _ := h.started("ti-pf-after"); ppid != z.currentPid() {
		t.Errorf("task after the restart: parent %d, want the new zygote %d", ppid, z.currentPid())
	}
}

func TestPreforkColdWhileDown(t *testing.T) {
	t.Parallel()
	rt := preforkRuntime(t)
	rt.Prefork.Preload = []string{"no_such_module_pf"} // never ready
	rt.Prefork.RestartDelay = time.Hour
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"pf"}
		c.Runtimes = map[string]Runtime{"pf": rt}
	})
	// Cold, it runs as the command says, with the task's environment only.
	ep := pf("noop")
	ep.Command[0] = rt.Prefork.Python
	ep.Env["PYTHONPATH"] = rt.Prefork.Env["PYTHONPATH"]
	h.execute("ti-pf-down", "pf", ep, fakeTI{}, nil)
	wantState(t, h.waitState("ti-pf-down"), activity.StateSuccess, "")
	h.waitLog("ti-pf-down", "cold start line", event("worker", "prefork: starting the task process cold"))
}

// TestPreforkWorkerKilled runs a worker-side zygote in a helper process (this
// test binary, see preforkHelper), SIGKILLs that process and checks that the
// zygote, its task and the task's grandchild die.
func TestPreforkWorkerKilled(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "grandchild")
	cmd := exec.Command(os.Args[0], "-test.run=^TestPreforkHelper$")
	rt := preforkRuntime(t)
	cmd.Env = append(os.Environ(), "TASKWIRE_PREFORK_HELPER="+file, "PF_PYTHON="+rt.Prefork.Python, "PF_PYTHONPATH="+rt.Prefork.Env["PYTHONPATH"])
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var zpid, pid int
	buf := make([]byte, 4096)
	var got string
	testbin.Eventually(t, 2*waitTimeout, "helper's pids", func() bool {
		n, _ := out.Read(buf)
		got += string(buf[:n])
		_, err := fmt.Sscanf(got, "zygote=%d task=%d\n", &zpid, &pid)
		return err == nil
	})
	gc := pidFromFile(t, file)
	for _, p := range []int{zpid, pid, gc} {
		if !testbin.Alive(p) {
			t.Fatalf("process %d not running before the kill", p)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	testbin.Eventually(t, waitTimeout, "zygote, task and grandchild gone", func() bool {
		return !testbin.Alive(zpid) && !testbin.Alive(pid) && !testbin.Alive(gc)
	})
}

// TestPreforkHelper is TestPreforkWorkerKilled's worker: it runs only in the
// helper process.
func TestPreforkHelper(t *testing.T) {
	file := os.Getenv("TASKWIRE_PREFORK_HELPER")
	if file == "" {
		t.Skip("helper of TestPreforkWorkerKilled")
	}
	w := &Worker{log: slog.New(slog.NewTextHandler(os.Stderr, nil)), cfg: Config{KillGrace: time.Second}}
	z := newZygote(w, "pf", Runtime{Prefork: &Prefork{Python: os.Getenv("PF_PYTHON"), Modules: []string{"pftask"},
		Env: map[string]string{"PYTHONPATH": os.Getenv("PF_PYTHONPATH")}}})
	z.start()
	defer z.stop()
	deadline := time.Now().Add(time.Minute)
	for z.current() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	_, pid, err := z.spawn([]string{"python3", "-m", "pftask", "family", file}, os.Environ(), "", [3]*os.File{null, null, null})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("zygote=%d task=%d\n", z.currentPid(), pid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	<-ctx.Done()
}
