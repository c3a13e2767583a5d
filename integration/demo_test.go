package integration

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/testbin"
)

// The README's demo command works: demo.sh builds the binaries, runs the
// executor on its embedded NATS and a worker, and every example task ends
// as it should.
func TestDemoScript(t *testing.T) {
	parallel(t, shared)
	if testing.Short() {
		t.Skip("builds the binaries: not in -short")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	port := func() string {
		_, p, _ := net.SplitHostPort(testbin.FreeAddr(t))
		return p
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "demo.sh"))
	cmd.Env = append(cmd.Environ(), "TASKWIRE_DEMO_API_PORT="+port(), "TASKWIRE_DEMO_NATS_PORT="+port(), "TMPDIR="+t.TempDir())
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	testbin.Account(t, "demo.sh", cmd.ProcessState)
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{
		"== a command task\n",
		"success (try 2)",                  // the flaky task
		"failed (try 1: execution timeout", // the slow one
		"value=42",                         // the XCom the pull task read
		"deferred (try 1: waiting on timedelta)",
		"extract   go     success try 1  xcom value = 21",
		"transform python success try 1  xcom return_value = 42",
		`load      java   success try 1  xcom return_value = "loaded 42"`,
		"deferred (try 1: waiting on event)",
		`resumed into after with event {"name":"demo.go","payload":{"batch":42}}`,
		"dag polyglot stored: version 1, 4 task(s)",
		"run demo_dag of polyglot: success",
		`published 2: {\"target\":\"dashboard\"} from {\"source\":\"demo\"}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
	// With the Airflow venv, the demo ends with examples/airflow, its
	// Airflow tasks forked from the worker's prefork zygote.
	if strings.Contains(s, "== an Airflow DAG on taskwire") && !strings.Contains(s, "run demo_airflow of airflow_demo: success") {
		t.Errorf("the demo's Airflow DAG run did not succeed:\n%s", s)
	}
	if n := strings.Count(s, "success (try 1)"); n != 6 {
		t.Errorf("%d tasks succeeded on their first try, want 6 (hello, push, pull, read_config, wait, wait_for_event):\n%s", n, s)
	}
}
