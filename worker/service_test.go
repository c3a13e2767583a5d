package worker

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/testbin"
)

// servicePids reads the pids a service appended to path, one a line.
func servicePids(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var pids []int
	for _, l := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("pid %q: %v", l, err)
		}
		pids = append(pids, n)
	}
	return pids
}

func serviceWorker(t *testing.T, svc Service, grace time.Duration) *Worker {
	t.Helper()
	cfg := Config{Services: []Service{svc}, KillGrace: grace}
	w := &Worker{cfg: cfg, log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	w.startServices()
	t.Cleanup(w.stopServices)
	return w
}

// A service that crashes is started again; Stop stops it.
func TestServiceRestartsAndStops(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	w := serviceWorker(t, Service{Name: "svc", RestartDelay: 50 * time.Millisecond,
		Command: []string{"sh", "-c", "echo $$ >> " + pidFile + "; echo up; exec sleep 300"}}, 2*time.Second)
	r := w.services[0]

	testbin.Eventually(t, 10*time.Second, "the service to start", func() bool { return len(servicePids(t, pidFile)) == 1 })
	first := servicePids(t, pidFile)[0]
	testbin.Eventually(t, 10*time.Second, "the service to be current", func() bool {
		pid, starts := r.current()
		return pid == first && starts == 1
	})
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil { // a crash
		t.Fatal(err)
	}
	testbin.Eventually(t, 10*time.Second, "the service to be restarted", func() bool { return len(servicePids(t, pidFile)) == 2 })
	second := servicePids(t, pidFile)[1]
	testbin.Eventually(t, 10*time.Second, "the restarted service to be current", func() bool {
		pid, starts := r.current()
		return pid == second && starts == 2
	})
	if second == first || !testbin.Alive(second) {
		t.Fatalf("restarted service: pid %d (first %d), alive %v", second, first, testbin.Alive(second))
	}

	w.stopServices()
	if testbin.Alive(second) {
		t.Errorf("the service %d is alive after stop", second)
	}
	if n := len(servicePids(t, pidFile)); n != 2 {
		t.Errorf("the service was started %d times, want 2 (not again after stop)", n)
	}
}

// A service that ignores SIGTERM is killed after KillGrace, with its
// process group.
func TestServiceKilledAfterGrace(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	w := serviceWorker(t, Service{Name: "stubborn",
		Command: []string{"sh", "-c", "trap '' TERM; sleep 300 & echo $! >> " + pidFile + "; echo $$ >> " + pidFile + "; wait"}},
		300*time.Millisecond)
	testbin.Eventually(t, 10*time.Second, "the service to start", func() bool { return len(servicePids(t, pidFile)) == 2 })
	pids := servicePids(t, pidFile)
	start := time.Now()
	w.stopServices()
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("stopped after %s, before the grace", d)
	}
	for _, pid := range pids {
		// SIGKILL is delivered a moment after kill(2) returns.
		testbin.Eventually(t, 5*time.Second, "process "+strconv.Itoa(pid)+" of the service's group to die",
			func() bool { return !testbin.Alive(pid) })
	}
}

func TestParseRuntimeFileServices(t *testing.T) {
	f, err := ParseRuntimeFile([]byte(`
queues:
  airflow: {runtime: command}
services:
  forkserver:
    command: [python3, -m, forkserver, --socket, /tmp/a b.sock]
    env: {AIRFLOW_HOME: /srv/airflow}
    dir: /srv
    restart_delay: 250ms
  other:
    command: ./helper --flag
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Service{
		{Name: "forkserver", Command: []string{"python3", "-m", "forkserver", "--socket", "/tmp/a b.sock"},
			Env: map[string]string{"AIRFLOW_HOME": "/srv/airflow"}, Dir: "/srv", RestartDelay: 250 * time.Millisecond},
		{Name: "other", Command: []string{"./helper", "--flag"}},
	}
	if !reflect.DeepEqual(f.Services, want) {
		t.Errorf("services: %+v\nwant %+v", f.Services, want)
	}
	// The one docker-compose.airflow.yml's worker uses.
	data, err := os.ReadFile(filepath.Join("..", "integrations", "airflow", "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := ParseRuntimeFile(data); err != nil || f.Queues["airflow"].Prefork == nil ||
		!reflect.DeepEqual(f.Queues["airflow"].Prefork.Modules, []string{"taskwire_airflow.run"}) {
		t.Errorf("integrations/airflow/worker.yaml: %+v, %v; want the airflow queue's taskwire_airflow.run forked from a prefork zygote", f, err)
	}
	for _, bad := range []string{
		"queues: {a: {runtime: command}}\nservices: {s: {env: {A: b}}}",
		"queues: {a: {runtime: command}}\nservices: {s: {command: x, restart_delay: soon}}",
		"queues: {a: {runtime: command}}\nservices: {s: {command: x, restart_delay: -1s}}",
		"queues: {a: {runtime: command}}\nservices: {s: {command: x, user: root}}",
	} {
		if _, err := ParseRuntimeFile([]byte(bad)); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: err %v, want ErrConfig", bad, err)
		}
	}
}
