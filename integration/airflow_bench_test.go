package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// BenchmarkAirflowQueuedToStart measures, for 100 tasks of one DAG run, the
// time from Airflow's scheduler queueing a task instance (queued_when) to
// its task process starting (start_date, sent by Airflow's supervisor as the
// process starts), under TaskwireExecutor and under Airflow's LocalExecutor,
// on the same machine with the same parallelism. TaskwireExecutor's worker
// forks each workload from its prefork zygote (taskwire-prefork), configured
// as docker-compose.airflow.yml's worker (integrations/airflow/worker.yaml).
// The Edge executor's workers poll every 5 s by default: that is the
// reference. taskwire-prefork-nospare is the A/B: the same without the
// zygote's spare children and with one submit at a time. The
// -one-at-a-time variants run with parallelism 1: Airflow queues the next
// task once the last has ended, so each task's queued → started is the
// executor's path alone, not a wait behind the other tasks for the
// machine's two cores (Airflow's API server and scheduler share them).
//
//	go test -run '^$' -bench BenchmarkAirflowQueuedToStart -benchtime 1x -timeout 30m ./integration
func BenchmarkAirflowQueuedToStart(b *testing.B) {
	venv := airflowVenv(b)
	for _, executor := range []string{"taskwire-prefork", "taskwire-prefork-nospare", "local",
		"taskwire-prefork-one-at-a-time", "local-one-at-a-time"} {
		b.Run(executor, func(b *testing.B) {
			parallelism := 8
			if strings.HasSuffix(executor, "-one-at-a-time") {
				parallelism = 1
			}
			c := newCluster(b, clusterOpts{logLevel: "warn", zombieThreshold: "30s"})
			env := []string{fmt.Sprintf("AIRFLOW__CORE__PARALLELISM=%d", parallelism)}
			nospare := executor == "taskwire-prefork-nospare"
			local := strings.HasPrefix(executor, "local")
			switch {
			case local:
				env = append(env, "AIRFLOW__CORE__EXECUTOR=LocalExecutor")
			case nospare:
				env = append(env, "AIRFLOW__TASKWIRE__SUBMIT_PARALLELISM=1")
			}
			af := startAirflow(b, venv, c.apiURL, env...)
			traceFile := filepath.Join(b.TempDir(), "start-trace.jsonl")
			if !local {
				cfg := af.preforkConfig("worker", "default", func(pf map[string]any) {
					pf["env"].(map[string]string)["TASKWIRE_AIRFLOW_TRACE"] = traceFile
					if nospare {
						pf["spare"] = 0
					}
				})
				w := c.startWorker(workerOpts{name: "worker", queues: "default", concurrency: parallelism,
					env: af.workerEnv(), config: cfg, extra: []string{"--log-level", "info"}})
				waitZygote(b, w)
			}
			af.waitDags("tw_bench")
			b.ResetTimer()
			var lat []time.Duration
			var parts [3][]time.Duration
			twStart := map[string]time.Time{}
			for range b.N {
				run := af.trigger("tw_bench")
				af.waitRun("tw_bench", run, 40*time.Minute)
				lat = append(lat, af.queuedToStart("tw_bench", run)...)
				if !local {
					for i, d := range af.taskwireBreakdown(c, "tw_bench", run, twStart) {
						parts[i] = append(parts[i], d...)
					}
				}
			}
			b.StopTimer()
			if !local {
				for i, name := range []string{
					"Airflow queued → taskwire queued (scheduler loop, executor heartbeat, submit)",
					"taskwire queued → worker started it (JetStream dispatch, claim)",
					"worker started it → Airflow's supervisor started the task process (zygote's fork, supervisor)",
				} {
					b.Logf("  %s: p50 %.0f ms, p99 %.0f ms", name, ms(quantile(parts[i], 0.5)), ms(quantile(parts[i], 0.99)))
				}
				logStartTrace(b, traceFile, twStart)
			}
			if len(lat) != 100*b.N {
				b.Fatalf("%d latencies, want %d", len(lat), 100*b.N)
			}
			b.ReportMetric(ms(quantile(lat, 0.5)), "p50_ms")
			b.ReportMetric(ms(quantile(lat, 0.99)), "p99_ms")
			b.Logf("%s: queued → task process started over %d tasks (parallelism %d): p50 %.0f ms, p99 %.0f ms (load average %s)",
				executor, len(lat), parallelism, ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), loadAverage())
		})
	}
}

// queuedToStart is start_date - queued_when of every task instance of a run.
func (a *airflow) queuedToStart(dagID, runID string) []time.Duration {
	a.t.Helper()
	var got struct {
		TIs []struct {
			Queued *time.Time `json:"queued_when"`
			Start  *time.Time `json:"start_date"`
		} `json:"task_instances"`
	}
	if err := a.call("GET", "/api/v2/dags/"+dagID+"/dagRuns/"+runID+"/taskInstances?limit=1000", nil, &got); err != nil {
		a.t.Fatal(err)
	}
	var ds []time.Duration
	for _, ti := range got.TIs {
		if ti.Queued == nil || ti.Start == nil {
			a.t.Fatalf("a task instance without queued_when or start_date: %+v", ti)
		}
		ds = append(ds, ti.Start.Sub(*ti.Queued))
	}
	return ds
}

// taskwireBreakdown splits queued → started of each task instance of a run
// at taskwire's own timestamps: Airflow's queued_when → taskwire's
// queued_at (the submit) → taskwire's start_date (the worker's start) →
// Airflow's start_date. One machine, one clock.
// twStart gets taskwire's start_date of each Airflow task instance id.
func (a *airflow) taskwireBreakdown(c *cluster, dagID, runID string, twStart map[string]time.Time) [3][]time.Duration {
	a.t.Helper()
	var got struct {
		TIs []struct {
			ID     string     `json:"id"`
			Queued *time.Time `json:"queued_when"`
			Start  *time.Time `json:"start_date"`
		} `json:"task_instances"`
	}
	if err := a.call("GET", "/api/v2/dags/"+dagID+"/dagRuns/"+runID+"/taskInstances?limit=1000", nil, &got); err != nil {
		a.t.Fatal(err)
	}
	tw := map[string]*activity.TaskInstance{}
	for _, l := range airflowTries(a.t, c.api, dagID) {
		for _, ti := range l {
			ident, _ := ti.Params["airflow"].(map[string]any)
			if id, _ := ident["ti_id"].(string); id != "" {
				tw[id] = ti
			}
		}
	}
	var out [3][]time.Duration
	for _, ti := range got.TIs {
		r := tw[ti.ID]
		if r == nil || r.QueuedAt == nil || r.StartDate == nil || ti.Queued == nil || ti.Start == nil {
			a.t.Fatalf("task instance %s: no taskwire record with queued_at and start_date (%+v)", ti.ID, r)
		}
		twStart[ti.ID] = *r.StartDate
		out[0] = append(out[0], r.QueuedAt.Sub(*ti.Queued))
		out[1] = append(out[1], r.StartDate.Sub(*r.QueuedAt))
		out[2] = append(out[2], ti.Start.Sub(*r.StartDate))
	}
	return out
}

// logStartTrace logs, step by step, where the last segment (taskwire's
// worker started the try → Airflow's start_date) went: the lines that
// taskwire_airflow.trace appended to file (TASKWIRE_AIRFLOW_TRACE in the
// zygote's environment), each step's wall time since the previous one,
// p50/p99 over the tasks, and its CPU where the runner measured it.
func logStartTrace(b *testing.B, file string, twStart map[string]time.Time) {
	b.Helper()
	f, err := os.Open(file)
	if err != nil {
		b.Fatalf("start trace: %v", err)
	}
	defer f.Close()
	var steps []string
	wall := map[string][]time.Duration{}
	cpu := map[string][]time.Duration{}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			TiID  string  `json:"ti_id"`
			Marks [][]any `json:"marks"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			b.Fatalf("start trace line %q: %v", sc.Text(), err)
		}
		start, ok := twStart[line.TiID]
		if !ok {
			continue
		}
		n++
		prevName, prevT, prevCPU := "taskwire's worker started the try (its start_date)", float64(start.UnixNano())/1e9, math.NaN()
		for _, m := range line.Marks {
			name, _ := m[0].(string)
			t, _ := m[1].(float64)
			c, isCPU := m[2].(float64)
			step := prevName + " → " + name
			if _, seen := wall[step]; !seen {
				steps = append(steps, step)
			}
			wall[step] = append(wall[step], time.Duration((t-prevT)*1e9))
			if isCPU && !math.IsNaN(prevCPU) {
				cpu[step] = append(cpu[step], time.Duration((c-prevCPU)*1e9))
			}
			prevName, prevT = name, t
			if isCPU {
				prevCPU = c
			}
		}
	}
	if err := sc.Err(); err != nil {
		b.Fatal(err)
	}
	// On stdout: a benchmark's log is cut to its first 10 lines.
	fmt.Printf("%s: the last segment step by step, over %d traced tasks (wall p50 / p99 ms; CPU of the runner p50 ms):\n", b.Name(), n)
	for _, s := range steps {
		c := "   -"
		if len(cpu[s]) > 0 {
			c = fmt.Sprintf("%4.1f", ms(quantile(cpu[s], 0.5)))
		}
		fmt.Printf("    %6.1f / %6.1f  cpu %s  %s\n", ms(quantile(wall[s], 0.5)), ms(quantile(wall[s], 0.99)), c, s)
	}
}
