package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/internal/testbin"
)

// diamondYAML is the diamond, exactly as written there.
const diamondYAML = `dag_id: diamond
tasks:
  - {task_id: a, queue: default, command: [sh, -c, 'echo "[1,2,3]"']}
  - {task_id: b, queue: default, depends_on: [a], command: [sh, -c, 'exit 1']}
  - {task_id: c, queue: default, depends_on: [a], command: [sh, -c, 'echo "n=$TASKWIRE_PARAMS"'],
     expand: {n: {from: a}}}          # one instance per element of a's return_value; or a literal list
  - {task_id: d, queue: default, depends_on: [b, c], trigger_rule: all_done, command: [true]}
  - {task_id: e, queue: default, depends_on: [b], command: [true]}     # upstream_failed
`

// dagCLI runs the executor binary's CLI against the cluster's executor and
// returns its output and exit status.
func (c *cluster) dagCLI(timeout time.Duration, args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := testbin.Run(ctx, c.bins.executor, []string{"TASKWIRE_API_URL=" + c.apiURL}, args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	c.t.Fatalf("executor %v: %v\n%s", args, err, out)
	return "", -1
}

func (c *cluster) applyDag(doc string) {
	c.t.Helper()
	f := c.path(fmt.Sprintf("dag-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if out, code := c.dagCLI(30*time.Second, "dags", "apply", "-f", f); code != 0 {
		c.t.Fatalf("dags apply: exit %d\n%s", code, out)
	}
}

func (c *cluster) runJSON(dagID, runID string) dag.RunView {
	c.t.Helper()
	out, code := c.dagCLI(30*time.Second, "runs", "get", dagID, runID, "--json")
	if code != 0 {
		c.t.Fatalf("runs get: exit %d\n%s", code, out)
	}
	var v dag.RunView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		c.t.Fatalf("runs get --json: %v\n%s", err, out)
	}
	return v
}

func runStates(v dag.RunView) string {
	var s []string
	for _, ti := range v.TaskInstances {
		k := ti.TaskID
		if ti.MapIndex >= 0 {
			k = fmt.Sprintf("%s[%d]", ti.TaskID, ti.MapIndex)
		}
		s = append(s, k+"="+string(ti.State))
	}
	return strings.Join(s, " ")
}

// TestDagDiamond runs the diamond DAG with the real binaries and
// the CLI's contract: a's last stdout line maps c over [1,2,3], b fails,
// e is upstream_failed, d runs by all_done; the run fails (a leaf is
// upstream_failed), so trigger --wait exits 1.
func TestDagDiamond(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{queues: "default"})
	c.applyDag(diamondYAML)
	out, code := c.dagCLI(90*time.Second, "runs", "trigger", "diamond", "--run-id", "r1", "--conf", `{"who":"test"}`, "--wait")
	if code != 1 {
		t.Fatalf("runs trigger --wait: exit %d, want 1 (the run failed)\n%s", code, out)
	}
	for _, want := range []string{"c[2]", "upstream_failed", "run r1 of diamond: failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("--wait output lacks %q:\n%s", want, out)
		}
	}
	v := c.runJSON("diamond", "r1")
	if got, want := runStates(v), "a=success b=failed c[0]=success c[1]=success c[2]=success d=success e=upstream_failed"; got != want {
		t.Fatalf("states\n got %s\nwant %s", got, want)
	}
	if v.State != dag.RunFailed {
		t.Fatalf("run %s", v.State)
	}
	// c's return values, pulled as one list in map-index order: each
	// instance saw its element in TASKWIRE_PARAMS.
	xo, code := c.dagCLI(30*time.Second, "xcom", "get", "diamond", "r1", "c")
	if code != 0 || !strings.Contains(xo, `["n={\"n\":1}","n={\"n\":2}","n={\"n\":3}"]`) {
		t.Fatalf("xcom of c: exit %d %s", code, xo)
	}
	// The same run_id again is the same run.
	if out, code := c.dagCLI(30*time.Second, "runs", "trigger", "diamond", "--run-id", "r1"); code != 0 || strings.TrimSpace(out) != "r1" {
		t.Fatalf("trigger again: %d %s", code, out)
	}
}

// TestDagMapOver100 maps a command task over the 100 elements of its
// upstream's output; the mapped task's XCom is their list in map-index
// order, and the run succeeds (trigger --wait exits 0).
func TestDagMapOver100(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{logLevel: "info"})
	c.startWorker(workerOpts{queues: "default", concurrency: 16})
	c.applyDag(`dag_id: map100
tasks:
  - {task_id: gen, queue: default, command: [sh, -c, 'i=0; s=""; while [ $i -lt 100 ]; do s="$s${s:+,}$i"; i=$((i+1)); done; echo "[$s]"']}
  - {task_id: sq, queue: default, command: [sh, -c, 'echo $((TASKWIRE_MAP_INDEX * 2))'], expand: {n: {from: gen}}}
  - {task_id: end, queue: default, depends_on: [sq], command: [sh, -c, 'echo "conf=$TASKWIRE_DAG_RUN_CONF"']}
`)
	out, code := c.dagCLI(180*time.Second, "runs", "trigger", "map100", "--run-id", "m", "--conf", `{"k":1}`, "--wait")
	if code != 0 {
		t.Fatalf("runs trigger --wait: exit %d\n%s", code, out)
	}
	v := c.runJSON("map100", "m")
	n := 0
	for _, ti := range v.TaskInstances {
		if ti.TaskID == "sq" {
			if ti.MapIndex != n || ti.State != "success" {
				t.Fatalf("sq instance %d: %+v", n, ti)
			}
			n++
		}
	}
	if n != 100 {
		t.Fatalf("%d mapped instances, want 100", n)
	}
	xo, _ := c.dagCLI(30*time.Second, "xcom", "get", "map100", "m", "sq")
	var list []int
	if err := json.Unmarshal([]byte(strings.TrimSpace(xo)), &list); err != nil || len(list) != 100 {
		t.Fatalf("xcom of sq: %v %s", err, xo)
	}
	for i, x := range list {
		if x != 2*i {
			t.Fatalf("sq[%d] = %d, want %d", i, x, 2*i)
		}
	}
	eo, _ := c.dagCLI(30*time.Second, "xcom", "get", "map100", "m", "end")
	if !strings.Contains(eo, `conf={\"k\":1}`) {
		t.Fatalf("end's return value %s, want the run's conf", eo)
	}
}

// countLines counts each line of a file the tasks append to.
func countLines(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out[l]++
		}
	}
	return out
}

// TestDagTwoExecutorsQueueOnce runs a fan-out/fan-in with two executor
// processes on one NATS, each serving its own worker: both record ends of
// the same run and both scans look at it; every task runs exactly once
// (each appends a line to a file).
func TestDagTwoExecutorsQueueOnce(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{logLevel: "info"})
	_, url2, _ := c.runExecutor("executor-2", testbin.FreeAddr(t), clusterOpts{logLevel: "info"})
	c.startWorker(workerOpts{name: "w1", queues: "default", concurrency: 8})
	c.startWorker(workerOpts{name: "w2", queues: "default", concurrency: 8, apiURL: url2})
	marks := c.path("marks")
	var b strings.Builder
	b.WriteString("dag_id: fan\ndefault_args: {queue: default}\ntasks:\n")
	fmt.Fprintf(&b, "  - {task_id: a, command: [sh, -c, 'echo a >> %s']}\n", marks)
	var ups []string
	for i := range 40 {
		fmt.Fprintf(&b, "  - {task_id: b%d, depends_on: [a], command: [sh, -c, 'echo b%d >> %s']}\n", i, i, marks)
		ups = append(ups, fmt.Sprintf("b%d", i))
	}
	fmt.Fprintf(&b, "  - {task_id: m, depends_on: [a], expand: {x: [1, 2, 3, 4, 5, 6, 7, 8]}, command: [sh, -c, 'echo m$TASKWIRE_MAP_INDEX >> %s']}\n", marks)
	fmt.Fprintf(&b, "  - {task_id: z, depends_on: [%s, m], command: [sh, -c, 'echo z >> %s']}\n", strings.Join(ups, ", "), marks)
	c.applyDag(b.String())
	for r := range 3 {
		out, code := c.dagCLI(120*time.Second, "runs", "trigger", "fan", "--run-id", fmt.Sprint("r", r), "--wait")
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s", r, code, out)
		}
	}
	got := countLines(t, marks)
	if len(got) != 50 {
		t.Fatalf("%d distinct tasks ran, want 50: %v", len(got), got)
	}
	var twice []string
	for k, n := range got {
		if n != 3 {
			twice = append(twice, fmt.Sprintf("%s×%d", k, n))
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Fatalf("tasks not run exactly once per run (3 runs): %v", twice)
	}
}

// TestDagExecutorKilledBetweenEndAndQueueing: an executor records a's end
// and never tells the run (fault injection: what dying right after the
// end leaves), is SIGKILLed, and restarts: its start-up scan queues b,
// which runs once.
func TestDagExecutorKilledBetweenEndAndQueueing(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{logLevel: "info", env: []string{"TASKWIRE_TEST_FAULT_DROP_RUN_ENDS=true"}})
	c.startWorker(workerOpts{queues: "default"})
	marks := c.path("marks")
	c.applyDag(fmt.Sprintf(`dag_id: crash
default_args: {queue: default}
tasks:
  - {task_id: a, command: [sh, -c, 'echo a >> %[1]s']}
  - {task_id: b, depends_on: [a], command: [sh, -c, 'echo b >> %[1]s']}
`, marks))
	if out, code := c.dagCLI(30*time.Second, "runs", "trigger", "crash", "--run-id", "k"); code != 0 {
		t.Fatalf("trigger: %d %s", code, out)
	}
	testbin.Eventually(t, 30*time.Second, "a's end recorded", func() bool {
		v := c.runJSON("crash", "k")
		return len(v.TaskInstances) == 2 && v.TaskInstances[0].State == "success"
	})
	if v := c.runJSON("crash", "k"); v.TaskInstances[1].State != "none" {
		t.Fatalf("b decided by the executor that drops ends: %s", runStates(v))
	}
	c.exec.Kill()
	addr := strings.TrimPrefix(c.apiURL, "http://")
	c.exec, _, c.api = c.runExecutor("executor-restarted", addr, clusterOpts{logLevel: "info"})
	testbin.Eventually(t, 60*time.Second, "the run to succeed after the restart", func() bool {
		return c.runJSON("crash", "k").State == dag.RunSuccess
	})
	if got := countLines(t, marks); got["a"] != 1 || got["b"] != 1 || len(got) != 2 {
		t.Fatalf("runs per task %v, want a and b once", got)
	}
}

// TestDagJavaTaskSeesItsRun: a Java SDK task of a DAG run sees the run
// (ctx.dagRun(), ctx.conf()) through the real worker and executor: its
// return value is the run it got.
func TestDagJavaTaskSeesItsRun(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{queues: "java", config: c.runtimeFile(t)})
	c.applyDag("dag_id: javarun\ntasks:\n  - {task_id: info, queue: java, task: run_info}\n")
	out, code := c.dagCLI(120*time.Second, "runs", "trigger", "javarun", "--run-id", "j1", "--conf", `{"who":"java"}`,
		"--logical-date", "2026-11-22T00:00:00Z", "--wait")
	if code != 0 {
		t.Fatalf("runs trigger --wait: exit %d\n%s", code, out)
	}
	xo, code := c.dagCLI(30*time.Second, "xcom", "get", "javarun", "j1", "info")
	if code != 0 {
		t.Fatalf("xcom get: exit %d %s", code, xo)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(xo)), &got); err != nil {
		t.Fatalf("info's return value %q: %v", xo, err)
	}
	want := map[string]any{"dag_id": "javarun", "run_id": "j1", "logical_date": "2026-11-22T00:00:00Z",
		"run_type": "manual", "conf": map[string]any{"who": "java"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the Java task saw the run %v, want %v", got, want)
	}
}
