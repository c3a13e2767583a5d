package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// The Airflow phase's queues (Config.Airflow): the airflow runtime cold (a
// python per task) and with its prefork zygote, and the Python SDK cold.
const (
	queueAirflowCold    = "airflow-cold"
	queueAirflowPrefork = "airflow-prefork"
	queuePyCold         = "python-cold"
)

// airflowDag is the Airflow phase's DAG file: one no-op @task.
const airflowDag = `from airflow.sdk import dag, task


@dag(dag_id="bench_af", schedule=None)
def bench_af():
    @task
    def noop():
        pass

    noop()


bench_af()
`

// AirflowStart is the Airflow phase: a no-op Airflow @task's start cost,
// queued → success one at a time, run by Airflow's own task runner in the
// airflow runtime, forked from the queue's prefork zygote and cold, beside
// a no-op task of the Python SDK run cold, and the interpreters' raw start.
type AirflowStart struct {
	Tasks   int     `json:"tasks"`
	Prefork Latency `json:"prefork"`
	Cold    Latency `json:"cold"`
	// PythonSDK is a cold no-op task of the Python SDK (with Config.Python).
	PythonSDK *Latency `json:"python_sdk,omitempty"`
	// BareAirflowPython and BarePython are python -c pass of the Airflow
	// venv's python and of Config.Python; ImportTaskRunner is the Airflow
	// python importing Airflow's task runner and exiting.
	BareAirflowPython Latency  `json:"bare_airflow_python"`
	BarePython        *Latency `json:"bare_python,omitempty"`
	ImportTaskRunner  Latency  `json:"import_task_runner"`
	// ZygoteReadyS is the zygote's start to ready (its imports).
	ZygoteReadyS float64 `json:"zygote_ready_s"`
	// LoadAverage is /proc/loadavg's 1, 5 and 15 minute loads at the end.
	LoadAverage string `json:"load_average"`
}

// airflowPhase runs the Airflow phase on a cluster of its own (no other
// worker).
func airflowPhase(ctx context.Context, cfg Config, dir string, prog *progress) (_ *AirflowStart, err error) {
	prog.set("airflow: starting cluster", 0, nil)
	ccfg := cfg
	ccfg.Workers = 0
	c, err := startCluster(ctx, ccfg, dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		prog.set("stopping cluster", 0, nil)
		if serr := c.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	c.airflowDags, c.airflowHome = filepath.Join(dir, "dags"), filepath.Join(dir, "airflow-home")
	for _, d := range []string{c.airflowDags, c.airflowHome} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(c.airflowDags, "bench_af.py"), []byte(airflowDag), 0o644); err != nil {
		return nil, err
	}
	queues := []string{queueAirflowCold, queueAirflowPrefork}
	if cfg.Python != "" {
		queues = append(queues, queuePyCold)
	}
	began := time.Now()
	w, err := c.startWorker(ctx, cfg, "bench-airflow-worker", queues)
	if err != nil {
		return nil, err
	}
	c.workers = append(c.workers, w)
	prog.set("airflow: the prefork zygote imports Airflow", 0, nil)
	for !w.PreforkReady(queueAirflowPrefork) {
		if time.Since(began) > 5*time.Minute {
			return nil, errors.New("airflow: the prefork zygote was not ready within 5m (run with --log-level info to see why)")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	a := &AirflowStart{Tasks: cfg.AirflowTasks, ZygoteReadyS: time.Since(began).Seconds()}

	var done atomic.Int64
	run := func(name, q, dag string) (Latency, error) {
		done.Store(0)
		prog.set("airflow: "+name, cfg.AirflowTasks, counter(&done))
		var ds []time.Duration
		for i := range cfg.AirflowTasks + 1 { // the first warms the page cache
			spec := activity.TaskSpec{Queue: q, DagID: dag, TaskID: "noop", RunID: fmt.Sprintf("bench_%s_%d", q, i),
				Entrypoint: activity.Entrypoint{Task: "noop"}}
			start := time.Now()
			ti, err := c.api.Submit(ctx, spec)
			if err != nil {
				return Latency{}, fmt.Errorf("%s: submit: %w", name, err)
			}
			if _, err := c.tracker.succeeded(ctx, ti.ID); err != nil {
				return Latency{}, fmt.Errorf("%s: %w", name, err)
			}
			if i > 0 {
				ds = append(ds, time.Since(start))
				done.Add(1)
			}
		}
		return summarize(ds), nil
	}
	if a.Prefork, err = run("no-op @task, prefork", queueAirflowPrefork, "bench_af"); err != nil {
		return nil, err
	}
	if a.Cold, err = run("no-op @task, cold", queueAirflowCold, "bench_af"); err != nil {
		return nil, err
	}
	if cfg.Python != "" {
		l, err := run("no-op Python SDK task, cold", queuePyCold, "bench_py")
		if err != nil {
			return nil, err
		}
		a.PythonSDK = &l
	}
	raw := func(name, python, code string) (Latency, error) {
		done.Store(0)
		prog.set("airflow raw: "+name, cfg.AirflowTasks, counter(&done))
		var ds []time.Duration
		for range cfg.AirflowTasks {
			cmd := exec.CommandContext(ctx, python, "-c", code)
			cmd.Env = append(os.Environ(), "AIRFLOW_HOME="+c.airflowHome)
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return Latency{}, fmt.Errorf("%s: %s -c %q: %v\n%s", name, python, code, err, out)
			}
			ds = append(ds, time.Since(t0))
			done.Add(1)
		}
		return summarize(ds), nil
	}
	if a.BareAirflowPython, err = raw("python -c pass (Airflow venv)", cfg.Airflow, "pass"); err != nil {
		return nil, err
	}
	if cfg.Python != "" {
		l, err := raw("python -c pass", cfg.Python, "pass")
		if err != nil {
			return nil, err
		}
		a.BarePython = &l
	}
	if a.ImportTaskRunner, err = raw("import Airflow's task runner", cfg.Airflow, "from airflow.sdk.execution_time import task_runner"); err != nil {
		return nil, err
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			a.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return a, nil
}

// AirflowFlags defines cmd/bench's flags of the Airflow phase on fs.
func AirflowFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.Airflow, "airflow", "", "run the Airflow start-cost phase alone, with this python of a venv with the pinned Airflow and the taskwire SDK (e.g. .venv-airflow/bin/python): a no-op Airflow @task queued → success with prefork and cold, beside the Python SDK and the bare interpreters")
	fs.IntVar(&cfg.AirflowTasks, "airflow-tasks", 10, "tasks of each row of the Airflow phase")
}

// writeTable writes the Airflow phase's figures.
func (a *AirflowStart) writeTable(b io.Writer) error {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Airflow start cost, one at a time (%d each; load average %s)\tp50\tp99\tp50 ratio to the prefork row\n", a.Tasks, a.LoadAverage)
	row := func(name string, l Latency) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f×\n", name, msOrS(l.P50), msOrS(l.P99), ratio(l.P50, a.Prefork.P50))
	}
	row("no-op Airflow @task, airflow runtime with prefork: queued → success", a.Prefork)
	row("no-op Airflow @task, airflow runtime cold (a python per task): queued → success", a.Cold)
	if a.PythonSDK != nil {
		row("no-op Python SDK task, cold: queued → success", *a.PythonSDK)
	}
	row("raw: python -c pass (Airflow venv)", a.BareAirflowPython)
	if a.BarePython != nil {
		row("raw: python -c pass", *a.BarePython)
	}
	row("raw: python importing Airflow's task runner", a.ImportTaskRunner)
	fmt.Fprintf(tw, "prefork zygote: worker start → ready (its imports)\t%.1f s\t\t\n", a.ZygoteReadyS)
	return tw.Flush()
}

func msOrS(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}
