package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// BenchmarkAirflowRuntimeStart measures a no-op task's start cost,
// queued → success (queued_at to end_date as the executor records them),
// run one at a time: an Airflow @task run by Airflow's own task runner in
// the airflow runtime, cold (a python per task) and forked from the queue's
// prefork zygote, beside a no-op task of taskwire's Python SDK, beside
// the bare start of each interpreter (python -c pass) and beside the import
// of Airflow's task runner alone (what every Airflow task process pays).
//
//	go test -run '^$' -bench BenchmarkAirflowRuntimeStart -benchtime 20x -timeout 30m ./integration
func BenchmarkAirflowRuntimeStart(b *testing.B) {
	c := newCluster(b, clusterOpts{logLevel: "warn"})
	file := c.airflowRuntimeFile(b)
	// The same file with a python queue of taskwire's Python SDK and a
	// prefork airflow queue.
	py := fmt.Sprintf("  python:\n    command: [%q, %q, --comm, \"{comm_addr}\", --logs, \"{logs_addr}\"]\n",
		testbin.Python(b), filepath.Join(repoRoot(b), "examples/pytasks/tasks.py")) + c.airflowQueue(b, "airflowpf", airflowPrefork)
	raw, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(file, append(raw, py...), 0o644); err != nil {
		b.Fatal(err)
	}
	w := c.startWorker(workerOpts{queues: "default,airflow,python,airflowpf", config: file, concurrency: 1, extra: []string{"--log-level", "info"}})
	waitZygote(b, w)
	venvPy := filepath.Join(airflowVenv(b), "bin", "python")
	b.ResetTimer()
	for _, k := range []struct{ name, queue, dag, task string }{
		{"airflow_task_prefork", "airflowpf", "twrt", "noop"},
		{"airflow_task", "airflow", "twrt", "noop"},
		{"python_sdk", "python", "bench", "noop"},
	} {
		var lat []time.Duration
		for i := range b.N + 1 {
			ti := c.wait(c.submit(activity.TaskSpec{Queue: k.queue, DagID: k.dag, RunID: fmt.Sprintf("bench_%d", i), TaskID: k.task,
				Entrypoint: activity.Entrypoint{Task: k.task}}).ID, 5*time.Minute)
			if ti.State != activity.StateSuccess || ti.QueuedAt == nil || ti.EndDate == nil {
				b.Fatalf("%s: %s (%s)\n%s", k.name, ti.State, ti.Reason, c.logs(ti.ID))
			}
			if i > 0 { // the first warms the page cache
				lat = append(lat, ti.EndDate.Sub(*ti.QueuedAt))
			}
		}
		report(b, k.name, lat)
	}
	for _, k := range []struct{ name, python, code string }{
		{"bare_airflow_venv_python", venvPy, "pass"},
		{"import_airflow_task_runner", venvPy, "from airflow.sdk.execution_time import task_runner"},
		{"bare_python", testbin.Python(b), "pass"},
	} {
		var lat []time.Duration
		for range b.N {
			t0 := time.Now()
			cmd := exec.Command(k.python, "-c", k.code)
			cmd.Env = append(os.Environ(), "AIRFLOW_HOME="+c.path("airflow-home"))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v %s", k.python, err, out)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, k.name, lat)
	}
	b.ReportMetric(0, "ns/op")
}

// loadAverage is the machine's 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func report(b *testing.B, name string, lat []time.Duration) {
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(float64(p(0.5).Milliseconds()), name+"_p50_ms")
	b.ReportMetric(float64(p(0.99).Milliseconds()), name+"_p99_ms")
	b.Logf("%-26s n=%d p50 %s p99 %s (load average %s)", name, len(lat), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), loadAverage())
}

// BenchmarkPythonTriggerMemory measures the memory of one Python trigger
// runtime process (taskwire.airflow_triggers) per 1,000 held triggers of an
// Airflow trigger class (the test DAG folder's FileAppearsTrigger, polling
// every 5s): RSS with 1 trigger, then with 1+N.
//
//	go test -run '^$' -bench BenchmarkPythonTriggerMemory -benchtime 5000x -timeout 10m ./integration
func BenchmarkPythonTriggerMemory(b *testing.B) {
	home := b.TempDir()
	cmd := exec.Command(filepath.Join(airflowVenv(b), "bin", "python"), "-m", "taskwire.airflow_triggers")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+airflowPythonPath(b), "AIRFLOW_HOME="+home, "AIRFLOW__CORE__LOAD_EXAMPLES=False")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	missing := filepath.Join(home, "never")
	start := func(i int, path string) {
		line, _ := json.Marshal(map[string]any{"op": "start", "id": fmt.Sprint(i), "classpath": "twrt_triggers.FileAppearsTrigger",
			"kwargs": map[string]any{"path": path, "poll": 5.0}})
		if _, err := stdin.Write(append(line, '\n')); err != nil {
			b.Fatal(err)
		}
	}
	// One trigger that fires at once tells when the runtime is up with
	// Airflow imported; the baseline is taken with one more waiting.
	ready := filepath.Join(home, "ready")
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	start(0, ready)
	start(1, missing)
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		b.Fatalf("no event from the runtime: %v", sc.Err())
	}
	base := rssOf(b, cmd.Process.Pid)
	b.ResetTimer()
	for i := range b.N {
		start(2+i, missing)
	}
	// Each trigger polls within 5s: after a few polls all are running.
	var rss int64
	deadline := time.Now().Add(60 * time.Second)
	for prev := int64(-1); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		rss = rssOf(b, cmd.Process.Pid)
		if rss == prev {
			break
		}
		prev = rss
	}
	b.StopTimer()
	per1000 := float64(rss-base) / float64(b.N) * 1000
	b.ReportMetric(per1000/(1<<20), "MiB_per_1000_triggers")
	b.ReportMetric(float64(base)/(1<<20), "MiB_base")
	b.ReportMetric(0, "ns/op")
	b.Logf("python trigger runtime: base RSS %.1f MiB (Airflow imported, 1 trigger); +%d triggers: %.1f MiB, %.2f MiB per 1,000",
		float64(base)/(1<<20), b.N, float64(rss)/(1<<20), per1000/(1<<20))
}
