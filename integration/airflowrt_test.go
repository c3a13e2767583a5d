package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/internal/testbin"
)

// The airflow runtime: tasks of an Airflow DAG file (testdata/airflowrt/dags)
// run unchanged by Airflow's own task runner from the pinned
// apache-airflow-task-sdk, on a taskwire worker that speaks Airflow's
// dialect to it. It does not skip: without the Airflow venv it builds one
// (airflowVenv).

// airflowRuntimeFile writes a worker runtime file with an "airflow" queue
// over the test DAG folder.
func (c *cluster) airflowRuntimeFile(t testing.TB) string {
	t.Helper()
	return c.airflowRuntimeFileWith(t, "")
}

// airflowPrefork is the airflow queue's worker.yaml lines that fork its
// tasks from a zygote with Airflow's task runner imported.
const airflowPrefork = "    prefork: {restart_delay: 200ms}\n"

// airflowRuntimeFileWith is airflowRuntimeFile with more lines for the
// airflow queue (airflowPrefork).
func (c *cluster) airflowRuntimeFileWith(t testing.TB, more string) string {
	t.Helper()
	yaml := "queues:\n  default:\n    runtime: command\n" + c.airflowQueue(t, "airflow", more)
	path := c.path("worker-airflow.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// airflowQueue is the runtime file entry of an airflow queue named name
// over the test DAG folder, with more lines.
func (c *cluster) airflowQueue(t testing.TB, name, more string) string {
	t.Helper()
	venv := airflowVenv(t)
	home := c.path("airflow-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`  %s:
    runtime: airflow
    python: %q
    dags_folder: %q
    env:
      AIRFLOW_HOME: %q
      AIRFLOW__CORE__LOAD_EXAMPLES: "False"
      PYTHONPATH: %q
`, name, filepath.Join(venv, "bin", "python"), airflowDags(t), home, airflowPythonPath(t)) + more
}

func airflowDags(t testing.TB) string {
	return filepath.Join(repoRoot(t), "integration", "testdata", "airflowrt", "dags")
}

// airflowPythonPath is the taskwire Python SDK (the shims) and the DAG
// folder (its trigger module).
func airflowPythonPath(t testing.TB) string {
	return filepath.Join(repoRoot(t), "sdk", "python", "src") + string(os.PathListSeparator) + airflowDags(t)
}

// startPythonTriggerer starts a triggerer with the Python trigger runtime
// (and the Execution API, for its triggers' connections and variables).
func (c *cluster) startPythonTriggerer(t testing.TB, name string, extra ...string) *triggerer {
	t.Helper()
	home := c.path("airflow-home-" + name)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	return c.startTriggerer(triggererOpts{name: name,
		extra: append([]string{"--python-triggers", filepath.Join(airflowVenv(t), "bin", "python") + " -m taskwire.airflow_triggers",
			"--api-url", c.apiURL}, extra...),
		env: []string{"PYTHONPATH=" + airflowPythonPath(t), "AIRFLOW_HOME=" + home, "AIRFLOW__CORE__LOAD_EXAMPLES=False"}})
}

// TestAirflowRuntime runs its tasks in the children of the queue's prefork
// zygote, as do the other tests of the runtime that run more than one
// Airflow task (a cold start costs ≈ 4 CPU-s of Airflow imports per task,
// the zygote's one start about as much); TestAirflowRuntimeInDagRun starts
// its one task cold, the path without prefork.
//
// Its subtests, in parallel, share one cluster, one worker and one
// triggerer with the Python trigger runtime, so the zygote and the trigger
// runtime import Airflow once for the six of them: they need nothing of
// their own but what they submit (their DAG runs, run ids, variables,
// connections and files are apart). The tests that kill, count or
// compare triggerers (PythonTriggerFailover, PythonTriggerRateLimit) and
// the cold path keep clusters of their own.
func TestAirflowRuntime(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
	w := c.startWorker(workerOpts{queues: "default,airflow", config: c.airflowRuntimeFileWith(t, airflowPrefork), concurrency: 6})
	tr := c.startPythonTriggerer(t, "trig")
	waitZygote(t, w)
	for _, sub := range []struct {
		name string
		run  func(*testing.T, *cluster, *testbin.Proc, *triggerer)
	}{
		{"tasks", airflowRuntimeTasks},
		{"BranchInDagRun", airflowRuntimeBranchInDagRun},
		{"RescheduleSensor", airflowRuntimeRescheduleSensor},
		{"DeferrableSensor", airflowRuntimeDeferrableSensor},
		{"EndFromTrigger", airflowRuntimeEndFromTrigger},
		{"PythonTriggerSecrets", airflowRuntimePythonTriggerSecrets},
	} {
		t.Run(sub.name, func(t *testing.T) {
			t.Parallel()
			sub.run(t, c.with(t), w, tr)
		})
	}
}

// airflowRuntimeTasks: Airflow tasks of one kind each (XCom, bash, a
// variable and a connection, retries, a skip, every request), forked.
func airflowRuntimeTasks(t *testing.T, c *cluster, w *testbin.Proc, _ *triggerer) {
	ctx := t.Context()
	if _, err := c.api.SetVariable(ctx, "greeting", "hello airflow", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.SetConnection(ctx, activity.Connection{ConnID: "warehouse", ConnType: "postgres", Host: "db.internal",
		Port: 5432, Login: "etl", Password: "s3cret-pw", Extra: map[string]any{"sslmode": "require"}}); err != nil {
		t.Fatal(err)
	}
	const run = "manual__2026-12-01T00:00:00+00:00"
	spec := func(task string, retries int) activity.TaskSpec {
		return activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: run, TaskID: task,
			RetryPolicy: activity.RetryPolicy{Retries: retries, Delay: activity.Duration(100 * time.Millisecond)},
			Entrypoint:  activity.Entrypoint{Task: task}}
	}
	finish := func(task string, retries int, want activity.State) (*activity.TaskInstance, string) {
		t.Helper()
		ti := c.wait(c.submit(spec(task, retries)).ID, 3*time.Minute)
		logs := c.logs(ti.ID)
		if os.Getenv("AIRFLOWRT_DEBUG") != "" {
			t.Logf("%s queued %s started %s ended %s\n%s", task, ti.QueuedAt, ti.StartDate, ti.EndDate, logs)
		}
		if ti.State != want {
			t.Fatalf("%s: %s (%s), want %s\n%s", task, ti.State, ti.Reason, want, logs)
		}
		return ti, logs
	}

	t.Run("forked", func(t *testing.T) {
		ti, logs := finish("noop", 0, activity.StateSuccess)
		forked := false
		for _, line := range strings.Split(w.Output(), "\n") {
			forked = forked || strings.Contains(line, "task process forked") && strings.Contains(line, ti.ID)
		}
		if strings.Contains(logs, "starting the task process cold") || !forked {
			t.Errorf("noop did not run in a child of the zygote:\n%s\nworker:\n%s", logs, w.Output())
		}
	})
	t.Run("cli", func(t *testing.T) {
		out, errOut, code := c.cli("submit", "--wait", "--queue", "airflow", "--dag-id", "twrt", "--task-id", "noop", "--run-id", run)
		if os.Getenv("AIRFLOWRT_DEBUG") != "" {
			t.Logf("%s", out)
		}
		if code != 0 || !strings.Contains(out, "success") {
			t.Fatalf("executor submit --queue airflow --task-id noop: exit %d\n%s\n%s", code, out, errOut)
		}
	})
	t.Run("xcom", func(t *testing.T) {
		finish("produce", 0, activity.StateSuccess)
		_, logs := finish("consume", 0, activity.StateSuccess)
		if !strings.Contains(logs, "consumed n=41") {
			t.Errorf("consume did not read produce's value:\n%s", logs)
		}
		if v, err := c.api.XCom(ctx, "twrt", run, "consume", "return_value"); err != nil || fmt.Sprint(v) != "42" {
			t.Errorf("consume's return_value %v (%v), want 42", v, err)
		}
	})
	t.Run("bash", func(t *testing.T) {
		_, logs := finish("bash", 0, activity.StateSuccess)
		if !strings.Contains(logs, "bash says 42") {
			t.Errorf("bash logs lack its output:\n%s", logs)
		}
	})
	t.Run("variable_and_connection", func(t *testing.T) {
		_, logs := finish("read_config", 0, activity.StateSuccess)
		for _, want := range []string{"greeting=hello airflow", "host=db.internal", "login=etl", "password=***", "sslmode"} {
			if !strings.Contains(logs, want) {
				t.Errorf("read_config logs lack %q:\n%s", want, logs)
			}
		}
		if strings.Contains(logs, "s3cret-pw") {
			t.Errorf("the connection's password is in the logs:\n%s", logs)
		}
	})
	t.Run("retry_then_fail", func(t *testing.T) {
		ti, logs := finish("boom", 1, activity.StateFailed)
		if ti.TryNumber != 2 {
			t.Errorf("boom ended on try %d, want 2 (retried once)", ti.TryNumber)
		}
		if !strings.Contains(logs, "failing on purpose") || !strings.Contains(logs, "ValueError") || !strings.Contains(logs, "twrt.py") {
			t.Errorf("boom logs lack the exception with its traceback:\n%s", logs)
		}
	})
	t.Run("skip", func(t *testing.T) {
		finish("skip_me", 0, activity.StateSkipped)
	})
	t.Run("every_request", func(t *testing.T) {
		_, logs := finish("every_request", 0, activity.StateSuccess)
		for _, want := range []string{
			"request SetRenderedFields: NoneType", "rendered-value",
			"request SetRenderedMapIndex: NoneType", "rendered map index: label-7",
			"request ValidateInletsAndOutlets: InactiveAssetsResult",
			"request GetDagRunState: DagRunStateResult",
			"request GetXComCount: XComCountResponse",
			"request GetXComSequenceSlice: XComSequenceSliceResult",
			"request GetVariable: ErrorResponse ErrorType.VARIABLE_NOT_FOUND",
			"request GetConnection: ErrorResponse ErrorType.CONNECTION_NOT_FOUND",
			"request PutVariable: NoneType",
			"request GetDagRun: refused API_SERVER_ERROR", "taskwire does not support GetDagRun",
			"request SkipDownstreamTasks: NoneType", "not part of a DAG run, nothing to skip",
			"token is ***",
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("every_request logs lack %q:\n%s", want, logs)
			}
		}
		if strings.Contains(logs, "tok-123456") {
			t.Errorf("a MaskSecret value is in the logs:\n%s", logs)
		}
		if v, err := c.api.Variable(ctx, "written_by_airflow"); err != nil || v.Value != "yes" {
			t.Errorf("variable written by PutVariable: %+v, %v", v, err)
		}
	})
}

// The golden frames protocol's TestAirflowGoldenFrames decodes and
// re-encodes byte for byte are what the pinned Task SDK's own encoder
// writes today: gen.py run with the Airflow venv into a fresh directory
// writes the same files, byte for byte (a pin moved without regenerating
// them fails here).
func TestAirflowGoldenFramesFromPinnedSDK(t *testing.T) {
	parallel(t, shared)
	root := repoRoot(t)
	golden := filepath.Join(root, "protocol", "testdata", "airflow")
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), filepath.Join(airflowVenv(t), "bin", "python"), filepath.Join(golden, "gen.py"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.py: %v\n%s", err, b)
	}
	fresh, err := filepath.Glob(filepath.Join(out, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := filepath.Glob(filepath.Join(golden, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != len(stored) || len(fresh) < 46 {
		t.Fatalf("gen.py wrote %d frames, testdata/airflow holds %d", len(fresh), len(stored))
	}
	for _, f := range fresh {
		name := filepath.Base(f)
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(golden, name))
		if err != nil {
			t.Errorf("%s: written by the pinned SDK, not in testdata/airflow: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the pinned SDK writes\n %x\ntestdata/airflow holds\n %x", name, got, want)
		}
	}
}

// waitZygote waits until worker w's prefork zygote is ready.
func waitZygote(t testing.TB, w *testbin.Proc) {
	t.Helper()
	testbin.Eventually(t, 3*time.Minute, "the prefork zygote ready", func() bool {
		select {
		case <-w.Done():
			t.Fatalf("worker exited: %v\n%s", w.Err(), w.Output())
		default:
		}
		return strings.Contains(w.Output(), "prefork zygote ready")
	})
}

// A deferrable sensor defers on Airflow's DateTimeTrigger, which taskwire's
// triggerer runs as its built-in datetime trigger, and resumes
// (TestAirflowRuntime/DeferrableSensor).
func airflowRuntimeDeferrableSensor(t *testing.T, c *cluster, _ *testbin.Proc, _ *triggerer) {
	ti := c.wait(c.submit(activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: "manual__defer", TaskID: "wait_async",
		Entrypoint: activity.Entrypoint{Task: "wait_async"}}).ID, 3*time.Minute)
	logs := c.logs(ti.ID)
	if ti.State != activity.StateSuccess || ti.NextMethod != "execute_complete" || ti.TryNumber != 1 {
		t.Fatalf("wait_async: %s (%s) next_method %q try %d, want success resumed at execute_complete on try 1\n%s",
			ti.State, ti.Reason, ti.NextMethod, ti.TryNumber, logs)
	}
	if !strings.Contains(logs, "deferred on trigger taskwire.triggers.DateTime") {
		t.Errorf("wait_async logs lack the deferral:\n%s", logs)
	}
}

// A task defers on a trigger class of the DAG folder (not built into
// taskwire): a triggerer runs it in its Python trigger runtime. That
// triggerer is SIGKILLed while it holds the trigger; the other takes it
// over, and the task resumes once.
func TestAirflowRuntimePythonTriggerFailover(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
	w := c.startWorker(workerOpts{queues: "default,airflow", config: c.airflowRuntimeFileWith(t, airflowPrefork)})
	waitZygote(t, w)
	a := c.startPythonTriggerer(t, "trig-a")
	signal := c.path("signal")
	if _, err := c.api.SetVariable(t.Context(), "signal_path", signal, ""); err != nil {
		t.Fatal(err)
	}
	ti := c.submit(activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: "manual__failover", TaskID: "wait_file",
		Entrypoint: activity.Entrypoint{Task: "wait_file"}})
	deferred := c.waitState(ti.ID, activity.StateDeferred, 3*time.Minute)
	if deferred.Trigger == nil || deferred.Trigger.Kind != "airflow" {
		t.Fatalf("wait_file deferred on %+v, want an airflow trigger", deferred.Trigger)
	}
	c.waitHeld(a, 1, 30*time.Second)
	b := c.startPythonTriggerer(t, "trig-b")
	a.Kill()
	c.waitHeld(b, 1, 60*time.Second)
	if err := os.WriteFile(signal, []byte("hello-failover\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := c.wait(ti.ID, 3*time.Minute)
	logs := c.logs(got.ID)
	if got.State != activity.StateSuccess || got.TryNumber != 1 || got.NextMethod != "done" {
		t.Fatalf("wait_file: %s (%s) try %d next_method %q, want success on try 1 resumed at done\n%s",
			got.State, got.Reason, got.TryNumber, got.NextMethod, logs)
	}
	if n := strings.Count(logs, `"event":"resumed: file said hello-failover"`); n != 1 {
		t.Errorf("wait_file resumed %d times, want once:\n%s", n, logs)
	}
	if v, err := c.api.XCom(t.Context(), "twrt", "manual__failover", "wait_file", "return_value"); err != nil || v != "hello-failover" {
		t.Errorf("wait_file's return_value %v (%v)", v, err)
	}
}

// A taskwire DAG run mixing command tasks and an Airflow task: gen and the
// mapped sq are shell commands, total (queue airflow) is an Airflow @task
// run by Airflow's runner, reading sq's XCom list, a mapped upstream's,
// through Airflow's lazy sequence (GetXComCount, GetXComSequenceSlice/Item).
// Its worker has no prefork: total starts cold, a python of its own.
func TestAirflowRuntimeInDagRun(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{plain: true})
	c.startWorker(workerOpts{queues: "default,airflow", config: c.airflowRuntimeFile(t), concurrency: 4})
	c.applyDag(`dag_id: twmix
tasks:
  - {task_id: gen, queue: default, command: [sh, -c, 'echo "[0,1,2,3]"']}
  - {task_id: sq, queue: default, command: [sh, -c, 'echo $((TASKWIRE_MAP_INDEX * 2))'], expand: {n: {from: gen}}}
  - {task_id: total, queue: airflow, depends_on: [sq], task: total}
`)
	out, code := c.dagCLI(5*time.Minute, "runs", "trigger", "twmix", "--run-id", "mix", "--wait")
	if code != 0 {
		t.Fatalf("runs trigger --wait: exit %d\n%s", code, out)
	}
	xo, _ := c.dagCLI(30*time.Second, "xcom", "get", "twmix", "mix", "total")
	if strings.TrimSpace(xo) != "12" {
		t.Errorf("total's return_value %q, want 12 (0+2+4+6)", xo)
	}
}

// end_from_trigger: a task whose trigger ends it is not resumed. A
// DateTimeSensorAsync(end_from_trigger=True) defers on Airflow's
// DateTimeTrigger (taskwire's built-in datetime kind) and ends as success at
// its moment; a DAG folder's trigger in the Python trigger runtime yields
// TaskSuccessEvent (its xcoms pushed), TaskSkippedEvent or TaskFailedEvent,
// and its task ends in that state, its resume method never run
// (TestAirflowRuntime/EndFromTrigger).
func airflowRuntimeEndFromTrigger(t *testing.T, c *cluster, _ *testbin.Proc, _ *triggerer) {
	const run = "manual__end"
	ids := map[string]string{}
	for _, task := range []string{"wait_end", "end_success", "end_skipped", "end_failed"} {
		ids[task] = c.submit(activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: run, TaskID: task,
			RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: activity.Duration(100 * time.Millisecond)},
			Entrypoint:  activity.Entrypoint{Task: task}}).ID
	}
	for task, want := range map[string]activity.State{"wait_end": activity.StateSuccess, "end_success": activity.StateSuccess,
		"end_skipped": activity.StateSkipped, "end_failed": activity.StateFailed} {
		ti := c.wait(ids[task], 3*time.Minute)
		logs := c.logs(ti.ID)
		if ti.State != want || ti.TryNumber != 1 {
			t.Errorf("%s: %s (%s) try %d, want %s on try 1\n%s", task, ti.State, ti.Reason, ti.TryNumber, want, logs)
		}
		if n := strings.Count(logs, `"event":"deferred on trigger`); n != 1 {
			t.Errorf("%s: %d deferrals in its log, want 1\n%s", task, n, logs)
		}
		if strings.Contains(logs, "was resumed") || strings.Count(logs, `"event":"starting try`) != 1 {
			t.Errorf("%s: resumed although its trigger ended it\n%s", task, logs)
		}
		if want == activity.StateSuccess && ti.Reason != "" || want != activity.StateSuccess && !strings.Contains(ti.Reason, "by its trigger") {
			t.Errorf("%s: reason %q", task, ti.Reason)
		}
	}
	if v, err := c.api.XCom(t.Context(), "twrt", run, "end_success", "verdict"); err != nil || v != "ended in the triggerer" {
		t.Errorf("end_success's xcom verdict %v (%v), want the TaskSuccessEvent's", v, err)
	}
	if v, err := c.api.XCom(t.Context(), "twrt", run, "end_success", "return_value"); err != nil || fmt.Sprint(v) != "7" {
		t.Errorf("end_success's return_value %v (%v), want 7", v, err)
	}
}

// SkipDownstreamTasks in a taskwire DAG run: pick (@task.branch) and gate
// (ShortCircuitOperator returning False) are Airflow tasks run by Airflow's
// runner; their downstream tasks are shell commands. The branch not taken
// (right) is skipped, and after_right with it (its trigger rule); gated,
// below the closed gate, is skipped; left runs. skip_odd, mapped, skips
// after_each's instance of its own map index when its n is odd (a
// [task_id, map_index] pair, sent before after_each is expanded): only
// after_each[1] and [3] are skipped.
//
// route is a mapped @task.branch (3 instances choosing even_path, odd_path
// and nothing): the pinned SDK sends no SkipDownstreamTasks from it, only
// a skipmixin_key XCom per instance, which the executor applies as
// Airflow's scheduler does (NotPreviouslySkippedDep reads a mapped
// parent's XCom at the child's own map index). Airflow's states: route[0]
// follows even_path, so odd_path[0] is skipped; route[1] follows
// odd_path, so even_path[1] is skipped; route[2] follows nothing, so
// even_path[2] and odd_path[2] are skipped; route_report, not mapped,
// reads map index -1 where route pushed nothing and runs (all_success over
// route's instances); after_odd (all_success under a skipped odd_path
// instance) is skipped; route_join (none_failed_min_one_success) runs.
//
// (TestAirflowRuntime/BranchInDagRun.)
func airflowRuntimeBranchInDagRun(t *testing.T, c *cluster, w *testbin.Proc, _ *triggerer) {
	c.applyDag(`dag_id: twbranch
tasks:
  - {task_id: pick, queue: airflow, task: pick}
  - {task_id: left, queue: default, depends_on: [pick], command: [sh, -c, 'echo left ran']}
  - {task_id: right, queue: default, depends_on: [pick], command: [sh, -c, 'echo right ran']}
  - {task_id: after_right, queue: default, depends_on: [right], command: [sh, -c, 'echo after_right ran']}
  - {task_id: gate, queue: airflow, task: gate}
  - {task_id: gated, queue: default, depends_on: [gate], command: [sh, -c, 'echo gated ran']}
  - {task_id: skip_odd, queue: airflow, task: skip_odd, expand: {n: [0, 1, 2, 3]}}
  - {task_id: after_each, queue: default, depends_on: [skip_odd], expand: {n: [0, 1, 2, 3]}, command: [sh, -c, 'echo after_each ran']}
  - {task_id: route, queue: airflow, task: route, expand: {n: [0, 1, 2]}}
  - {task_id: even_path, queue: default, depends_on: [route], expand: {n: [0, 1, 2]}, command: [sh, -c, 'echo even_path ran']}
  - {task_id: odd_path, queue: default, depends_on: [route], expand: {n: [0, 1, 2]}, command: [sh, -c, 'echo odd_path ran']}
  - {task_id: route_report, queue: default, depends_on: [route], command: [sh, -c, 'echo route_report ran']}
  - {task_id: after_odd, queue: default, depends_on: [odd_path], command: [sh, -c, 'echo after_odd ran']}
  - {task_id: route_join, queue: default, depends_on: [even_path, odd_path], trigger_rule: none_failed_min_one_success, command: [sh, -c, 'echo route_join ran']}
`)
	out, code := c.dagCLI(5*time.Minute, "runs", "trigger", "twbranch", "--run-id", "branch", "--wait")
	if code != 0 {
		t.Fatalf("runs trigger --wait: exit %d\n%s", code, out)
	}
	v := c.runJSON("twbranch", "branch")
	want := map[string]activity.State{"pick": activity.StateSuccess, "left": activity.StateSuccess, "right": activity.StateSkipped,
		"after_right": activity.StateSkipped, "gate": activity.StateSuccess, "gated": activity.StateSkipped,
		"skip_odd[0]": activity.StateSuccess, "skip_odd[1]": activity.StateSuccess, "skip_odd[2]": activity.StateSuccess,
		"skip_odd[3]": activity.StateSuccess, "after_each[0]": activity.StateSuccess, "after_each[1]": activity.StateSkipped,
		"after_each[2]": activity.StateSuccess, "after_each[3]": activity.StateSkipped,
		"route[0]": activity.StateSuccess, "route[1]": activity.StateSuccess, "route[2]": activity.StateSuccess,
		"even_path[0]": activity.StateSuccess, "even_path[1]": activity.StateSkipped, "even_path[2]": activity.StateSkipped,
		"odd_path[0]": activity.StateSkipped, "odd_path[1]": activity.StateSuccess, "odd_path[2]": activity.StateSkipped,
		"route_report": activity.StateSuccess, "after_odd": activity.StateSkipped, "route_join": activity.StateSuccess}
	got := map[string]activity.State{}
	airflowTIs := 0
	for _, ti := range v.TaskInstances {
		if ti.TaskID == "pick" || ti.TaskID == "gate" || ti.TaskID == "skip_odd" || ti.TaskID == "route" {
			airflowTIs++
			if !forkedTI(w, ti.TIID) {
				t.Errorf("%s[%d] (%s) did not run in a child of the zygote", ti.TaskID, ti.MapIndex, ti.TIID)
			}
		}
		name := ti.TaskID
		if ti.MapIndex >= 0 {
			name = fmt.Sprintf("%s[%d]", ti.TaskID, ti.MapIndex)
		}
		got[name] = ti.State
		if ti.TaskID == "right" && ti.Reason != "skipped by pick" {
			t.Errorf("right's reason %q, want skipped by pick", ti.Reason)
		}
		if want := fmt.Sprintf("skipped by route[%d] (its skipmixin_key XCom)", ti.MapIndex); (name == "odd_path[0]" || name == "even_path[1]") && ti.Reason != want {
			t.Errorf("%s's reason %q, want %q", name, ti.Reason, want)
		}
	}
	if !reflect.DeepEqual(got, want) || v.State != dag.RunSuccess {
		t.Errorf("run %s: %s, want %v\n%s", v.State, runStates(v), want, out)
	}
	// Its nine Airflow tasks (pick, gate, skip_odd's four, route's three)
	// ran in the zygote's children (checked above, each by its id: the
	// worker is shared with TestAirflowRuntime's other subtests).
	if airflowTIs != 9 {
		t.Errorf("the run has %d Airflow task instances, want 9", airflowTIs)
	}
}

// forkedTI reports whether worker w logged task instance id's task
// process as forked from its zygote (forkLine).
func forkedTI(w *testbin.Proc, id string) bool {
	return id != "" && forkLine(w.Output(), id) >= 0
}

// A reschedule-mode sensor (PythonSensor(mode="reschedule") poking for a
// file): each unsuccessful poke ends the run as up_for_reschedule, and the
// same try runs again at the sensor's reschedule_date (taskwire's retry
// timer), consuming no retry; once the file exists it succeeds on try 1.
// (TestAirflowRuntime/RescheduleSensor.)
func airflowRuntimeRescheduleSensor(t *testing.T, c *cluster, _ *testbin.Proc, _ *triggerer) {
	signal := c.path("reschedule-signal")
	if _, err := c.api.SetVariable(t.Context(), "reschedule_path", signal, ""); err != nil {
		t.Fatal(err)
	}
	ti := c.submit(activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: "manual__reschedule", TaskID: "poke_file",
		Entrypoint: activity.Entrypoint{Task: "poke_file"}})
	// It is rescheduled, and runs again as the same try, at least twice
	// before the file appears.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		cur, err := c.api.Get(t.Context(), ti.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.TryNumber != 1 || len(cur.Tries) != 1 {
			t.Fatalf("poke_file at try %d (%d tries): a reschedule must keep the try", cur.TryNumber, len(cur.Tries))
		}
		if cur.State == activity.StateUpForReschedule && (cur.RetryAt == nil || cur.RescheduleCount < 1) {
			t.Fatalf("poke_file up_for_reschedule without retry_at (%v) or reschedule_count (%d)", cur.RetryAt, cur.RescheduleCount)
		}
		if cur.RescheduleCount >= 2 {
			break
		}
		if time.Now().After(deadline) || cur.State.Terminal() {
			t.Fatalf("poke_file did not reschedule twice: %s (%s), %d reschedules", cur.State, cur.Reason, cur.RescheduleCount)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := os.WriteFile(signal, []byte("here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := c.wait(ti.ID, 3*time.Minute)
	logs := c.logs(got.ID)
	if got.State != activity.StateSuccess || got.TryNumber != 1 || len(got.Tries) != 1 || got.RescheduleCount < 2 {
		t.Fatalf("poke_file: %s (%s) try %d (%d tries) reschedules %d, want success on try 1 after 2+ reschedules\n%s",
			got.State, got.Reason, got.TryNumber, len(got.Tries), got.RescheduleCount, logs)
	}
	if n := strings.Count(logs, `"event":"rescheduled: the same try runs again`); n < 2 {
		t.Errorf("poke_file logs %d reschedules, want 2 or more:\n%s", n, logs)
	}
}

// A trigger of the Python trigger runtime paced by a cluster rate limit:
// tasks defer on a DAG-folder trigger (PollApiTrigger) whose polls of one
// local server each take rate_limit() of its rate_key; a limit of 10
// req/s with 3 in flight, two triggerers holding the triggers between
// them (capacity 8 each). The server counts at most 11 requests in each
// wall-clock second (the tolerance of TestRateLimitedWaits: a bucket of
// one token spaces requests 1/10 s apart, so a window can hold 11) and
// never more than 3 at once; once it answers 200, every task resumes once.
func TestAirflowRuntimePythonTriggerRateLimit(t *testing.T) {
	parallel(t, shared)
	const (
		n   = 12
		rps = 10
	)
	var (
		ready    atomic.Bool
		mu       sync.Mutex
		perSec   = map[int64]int{}
		total    atomic.Int64
		inflight atomic.Int64
		maxIn    atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxIn.Load()
			if in <= m || maxIn.CompareAndSwap(m, in) {
				break
			}
		}
		total.Add(1)
		mu.Lock()
		perSec[time.Now().Unix()]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		if !ready.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ready")
	}))
	defer srv.Close()
	c := newCluster(t, clusterOpts{plain: true})
	w := c.startWorker(workerOpts{queues: "default,airflow", config: c.airflowRuntimeFileWith(t, airflowPrefork), concurrency: 4})
	waitZygote(t, w)
	a := c.startPythonTriggerer(t, "trig-a", "--capacity", "8")
	b := c.startPythonTriggerer(t, "trig-b", "--capacity", "8")
	if out, errOut, code := c.cli("limits", "set", "twrt-api", "--rps", fmt.Sprint(rps), "--concurrent", "3"); code != 0 {
		t.Fatalf("limits set: exit %d: %s%s", code, out, errOut)
	}
	if _, err := c.api.SetVariable(t.Context(), "api_url", srv.URL+"/status", ""); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		ids[i] = c.submit(activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: fmt.Sprintf("manual__poll-%d", i), TaskID: "poll_api",
			Entrypoint: activity.Entrypoint{Task: "poll_api"}}).ID
	}
	testbin.Eventually(t, 8*time.Minute, "every task deferred and held", func() bool {
		ha, errA := a.held()
		hb, errB := b.held()
		return errA == nil && errB == nil && ha+hb == n
	})
	ha, _ := a.held()
	hb, _ := b.held()
	if ha == 0 || hb == 0 {
		t.Fatalf("triggerers hold %d and %d: want both some", ha, hb)
	}
	// They poll against the limit a while (3 s worth of tokens), then the
	// server answers 200.
	before := total.Load()
	testbin.Eventually(t, time.Minute, "3 s of polls at the limit", func() bool { return total.Load()-before >= 3*rps })
	ready.Store(true)
	for _, id := range ids {
		ti := c.wait(id, 3*time.Minute)
		logs := c.logs(ti.ID)
		if ti.State != activity.StateSuccess || ti.TryNumber != 1 {
			t.Errorf("%s: %s (%s) try %d, want success on try 1\n%s", ti.RunID, ti.State, ti.Reason, ti.TryNumber, logs)
		}
		if k := strings.Count(logs, `"event":"resumed: api answered 200`); k != 1 {
			t.Errorf("%s resumed %d times, want once:\n%s", ti.RunID, k, logs)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	worst, over := 0, 0
	for _, v := range perSec {
		worst = max(worst, v)
		if v > rps+1 {
			over++
		}
	}
	t.Logf("%d Python-runtime triggers on 2 triggerers (%d and %d), limit %d req/s, 3 in flight: %d requests in %d seconds, at most %d in one second, %d in flight at most",
		n, ha, hb, rps, total.Load(), len(perSec), worst, maxIn.Load())
	if over > 0 {
		t.Errorf("%d seconds had more than %d requests (worst %d): %v", over, rps+1, worst, perSec)
	}
	if maxIn.Load() > 3 {
		t.Errorf("%d requests in flight at once, limit 3", maxIn.Load())
	}
}

// Connections and variables in a trigger of the Python trigger runtime:
// ReadSecretsTrigger reads a Variable (sync inside run(), through
// greenback's portal), a Connection (async, and sync from a thread) and a
// missing Variable's default, with the trigger token the executor minted;
// the task resumes with their values, and the password the trigger wrote
// to its log is masked in the triggerer's.
//
// (TestAirflowRuntime/PythonTriggerSecrets.)
func airflowRuntimePythonTriggerSecrets(t *testing.T, c *cluster, _ *testbin.Proc, tr *triggerer) {
	ctx := t.Context()
	const password = "trig-s3cret-pw"
	if _, err := c.api.SetVariable(ctx, "trigger_greeting", "hello from a trigger", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.api.SetConnection(ctx, activity.Connection{ConnID: "trigger_conn", ConnType: "http", Host: "api.internal",
		Login: "trig-user", Password: password, Extra: map[string]any{"region": "eu"}}); err != nil {
		t.Fatal(err)
	}
	ti := c.submit(activity.TaskSpec{Queue: "airflow", DagID: "twrt", RunID: "manual__secrets", TaskID: "read_secrets",
		Entrypoint: activity.Entrypoint{Task: "read_secrets"}})
	got := c.wait(ti.ID, 3*time.Minute)
	if got.State != activity.StateSuccess || got.TryNumber != 1 {
		t.Fatalf("read_secrets: %s (%s) try %d\n%s\ntriggerer:\n%s", got.State, got.Reason, got.TryNumber, c.logs(got.ID), tr.Output())
	}
	v, err := c.api.XCom(ctx, "twrt", "manual__secrets", "read_secrets", "return_value")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(password))
	want := map[string]any{"greeting": "hello from a trigger", "host": "api.internal", "login": "trig-user",
		"extra": map[string]any{"region": "eu"}, "password_sha256": hex.EncodeToString(sum[:]), "missing": "fallback"}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("the trigger's event %v, want %v", v, want)
	}
	out := tr.Output()
	if strings.Contains(out, password) {
		t.Errorf("the triggerer's log shows the connection's password:\n%s", out)
	}
	if !strings.Contains(out, "login=trig-user password=***") {
		t.Errorf("the triggerer's log lacks the trigger's masked line:\n%s", out)
	}
}
