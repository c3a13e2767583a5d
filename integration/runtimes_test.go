package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/taskwire/taskwire/internal/testbin"
)

// repoRoot is the module root (integration/ runs in its own directory).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// runtimeFile writes a worker runtime file serving default (command), go,
// python and java, and returns its path. The python and java queues run the
// examples with the SDKs as packages: the venv's python with taskwire
// installed, and examples/javatasks compiled against the SDK's jar
// (testbin.Python, testbin.JavaTasksClasspath; ./test.sh provides both).
func (c *cluster) runtimeFile(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	yaml := fmt.Sprintf(`queues:
  default:
    runtime: command
  go:
    command: [%q, --comm, "{comm_addr}", --logs, "{logs_addr}"]
  python:
    command: [%q, %q, --comm, "{comm_addr}", --logs, "{logs_addr}"]
    socket: unix
  java:
    command: [java, -Xshare:auto, -XX:TieredStopAtLevel=1, -cp, %q, Tasks, --comm, "{comm_addr}", --logs, "{logs_addr}"]
    codec: json
`, c.bins.gotasks, testbin.Python(t), filepath.Join(root, "examples/pytasks/tasks.py"), testbin.JavaTasksClasspath(t))
	path := c.path("worker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
