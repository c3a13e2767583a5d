package integration

import (
	"fmt"
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
// reference.
//
//	go test -run '^$' -bench BenchmarkAirflowQueuedToStart -benchtime 1x -timeout 30m ./integration
func BenchmarkAirflowQueuedToStart(b *testing.B) {
	const parallelism = 8
	venv := airflowVenv(b)
	for _, executor := range []string{"taskwire-prefork", "local"} {
		b.Run(executor, func(b *testing.B) {
			c := newCluster(b, clusterOpts{logLevel: "warn", zombieThreshold: "30s"})
			env := []string{fmt.Sprintf("AIRFLOW__CORE__PARALLELISM=%d", parallelism)}
			if executor == "local" {
				env = append(env, "AIRFLOW__CORE__EXECUTOR=LocalExecutor")
			}
			af := startAirflow(b, venv, c.apiURL, env...)
			if executor == "taskwire-prefork" {
				w := c.startWorker(workerOpts{name: "worker", queues: "default", concurrency: parallelism,
					env: af.workerEnv(), config: af.preforkConfig("worker", "default"), extra: []string{"--log-level", "info"}})
				waitZygote(b, w)
			}
			af.waitDags("tw_bench")
			b.ResetTimer()
			var lat []time.Duration
			var parts [3][]time.Duration
			for range b.N {
				run := af.trigger("tw_bench")
				af.waitRun("tw_bench", run, 40*time.Minute)
				lat = append(lat, af.queuedToStart("tw_bench", run)...)
				if executor != "local" {
					for i, d := range af.taskwireBreakdown(c, "tw_bench", run) {
						parts[i] = append(parts[i], d...)
					}
				}
			}
			b.StopTimer()
			if executor != "local" {
				for i, name := range []string{
					"Airflow queued → taskwire queued (scheduler loop, executor heartbeat, submit)",
					"taskwire queued → worker started it (JetStream dispatch, claim)",
					"worker started it → Airflow's supervisor started the task process (zygote's fork, supervisor)",
				} {
					b.Logf("  %s: p50 %.0f ms, p99 %.0f ms", name, ms(quantile(parts[i], 0.5)), ms(quantile(parts[i], 0.99)))
				}
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
func (a *airflow) taskwireBreakdown(c *cluster, dagID, runID string) [3][]time.Duration {
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
		out[0] = append(out[0], r.QueuedAt.Sub(*ti.Queued))
		out[1] = append(out[1], r.StartDate.Sub(*r.QueuedAt))
		out[2] = append(out[2], ti.Start.Sub(*r.StartDate))
	}
	return out
}
