package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/testbin"
)

// A worker's service (worker.yaml's services:) runs while the worker does,
// is stopped with it on SIGTERM, and gets SIGTERM when the worker is
// SIGKILLed: no service outlives its worker.
func TestWorkerServiceLifecycle(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true, logLevel: "info"})
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run("worker "+how, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pid")
			cfg := filepath.Join(dir, "worker.yaml")
			yaml := "queues:\n  default: {runtime: command}\nservices:\n  helper:\n" +
				"    command: [sh, -c, 'echo $$ > " + pidFile + "; exec sleep 300']\n"
			if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			w := c.startWorker(workerOpts{name: "worker-" + how, queues: "default", config: cfg})
			var pid int
			testbin.Eventually(t, 30*time.Second, "the service to start", func() bool {
				b, err := os.ReadFile(pidFile)
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return err == nil && pid > 0 && testbin.Alive(pid)
			})
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if how == "SIGKILL" {
				w.Kill()
			} else if !w.Stop(30 * time.Second) {
				t.Fatalf("the worker did not stop on SIGTERM:\n%s", w.Output())
			}
			testbin.Eventually(t, 30*time.Second, "the service to end with its worker", func() bool { return !testbin.Alive(pid) })
			if how == "SIGTERM" && !strings.Contains(w.Output(), "service stopped") {
				t.Errorf("the worker did not stop its service:\n%s", w.Output())
			}
		})
	}
}
