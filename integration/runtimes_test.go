package integration

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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

var javaBuild struct {
	once sync.Once
	dir  string
	err  error
}

// javaClasses compiles the Java SDK and examples/javatasks once per test
// binary and returns the class directory. javac is on every machine this
// runs on: a missing one fails the test.
func javaClasses(t testing.TB) string {
	t.Helper()
	javaBuild.once.Do(func() {
		root := repoRoot(t)
		var srcs []string
		err := filepath.WalkDir(filepath.Join(root, "sdk/java/src"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".java") {
				srcs = append(srcs, p)
			}
			return err
		})
		if err != nil {
			javaBuild.err = err
			return
		}
		srcs = append(srcs, filepath.Join(root, "examples/javatasks/Tasks.java"))
		dir, err := os.MkdirTemp("", "taskwire-java-")
		if err != nil {
			javaBuild.err = err
			return
		}
		out, err := exec.Command("javac", append([]string{"-d", dir}, srcs...)...).CombinedOutput()
		if err != nil {
			javaBuild.err = fmt.Errorf("javac: %w\n%s", err, out)
			return
		}
		javaBuild.dir = dir
	})
	if javaBuild.err != nil {
		t.Fatal(javaBuild.err)
	}
	return javaBuild.dir
}

// runtimeFile writes a worker runtime file serving default (command), go,
// python and java, and returns its path.
func (c *cluster) runtimeFile(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	yaml := fmt.Sprintf(`queues:
  default:
    runtime: command
  go:
    command: [%q, --comm, "{comm_addr}", --logs, "{logs_addr}"]
  python:
    command: [python3, %q, --comm, "{comm_addr}", --logs, "{logs_addr}"]
    socket: unix
  java:
    command: [java, -Xshare:auto, -XX:TieredStopAtLevel=1, -cp, %q, Tasks, --comm, "{comm_addr}", --logs, "{logs_addr}"]
    codec: json
`, c.bins.gotasks, filepath.Join(root, "examples/pytasks/tasks.py"), javaClasses(t))
	path := c.path("worker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cleanupJava removes the compiled classes when the test binary ends.
func cleanupJava() {
	if javaBuild.dir != "" {
		os.RemoveAll(javaBuild.dir)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
