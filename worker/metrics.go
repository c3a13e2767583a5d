package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskwire/taskwire/activity"
)

// Metric names.
const (
	MetricTasksStarted      = "taskwire_worker_tasks_started_total"
	MetricTasksFinished     = "taskwire_worker_tasks_finished_total"
	MetricTaskDuration      = "taskwire_worker_task_duration_seconds"
	MetricTaskHeartbeats    = "taskwire_worker_task_heartbeats_total"
	MetricRegistryHeartbeat = "taskwire_worker_registry_heartbeats_total"
	// MetricRunning is Worker.Running (see Worker.RunningGauge).
	MetricRunning = "taskwire_worker_running"

	// The warm pools' metrics (see Worker.WarmCollector), by queue.
	MetricWarmProcesses = "taskwire_worker_warm_processes"
	MetricWarmTasks     = "taskwire_worker_warm_tasks_running"
	MetricWarmRecycles  = "taskwire_worker_warm_recycles_total" // and reason: max_tasks, max_rss, idle_timeout
	MetricWarmCrashes   = "taskwire_worker_warm_crashes_total"
	MetricWarmKills     = "taskwire_worker_warm_kills_total"

	// MetricRuntimeAuthRejected counts the connections to a runtime's comm
	// or logs address refused because they did not present the runtime's
	// secret (label channel: comm, logs); reported by WarmCollector.
	MetricRuntimeAuthRejected = "taskwire_worker_runtime_auth_rejected_total"
)

var (
	descWarmProcesses = prometheus.NewDesc(MetricWarmProcesses, "Warm runtime processes alive, by queue.", []string{"queue"}, nil)
	descWarmTasks     = prometheus.NewDesc(MetricWarmTasks, "Tasks running in warm runtime processes, by queue.", []string{"queue"}, nil)
	descWarmRecycles  = prometheus.NewDesc(MetricWarmRecycles,
		"Warm runtime processes retired by the worker, by queue and reason (max_tasks, max_rss, idle_timeout).", []string{"queue", "reason"}, nil)
	descWarmCrashes = prometheus.NewDesc(MetricWarmCrashes,
		"Warm runtime processes that ended without being retired or killed by the worker, by queue.", []string{"queue"}, nil)
	descWarmKills = prometheus.NewDesc(MetricWarmKills,
		"Warm runtime processes the worker killed (a task that did not stop when cancelled, a protocol error), by queue.", []string{"queue"}, nil)
	descAuthRejected = prometheus.NewDesc(MetricRuntimeAuthRejected,
		"Connections to a runtime's comm or logs address refused for want of the runtime's secret, by channel.", []string{"channel"}, nil)
)

// WarmCollector collects the warm pools' metrics, read when scraped, for
// the binary to register.
func (w *Worker) WarmCollector() prometheus.Collector { return warmCollector{w} }

type warmCollector struct{ w *Worker }

func (c warmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWarmProcesses, descWarmTasks, descWarmRecycles, descWarmCrashes, descWarmKills, descAuthRejected} {
		ch <- d
	}
}

func (c warmCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descAuthRejected, prometheus.CounterValue, float64(c.w.authRejected.comm.Load()), chanComm)
	ch <- prometheus.MustNewConstMetric(descAuthRejected, prometheus.CounterValue, float64(c.w.authRejected.logs.Load()), chanLogs)
	for q, p := range c.w.pools {
		procs, tasks := p.counts()
		ch <- prometheus.MustNewConstMetric(descWarmProcesses, prometheus.GaugeValue, float64(procs), q)
		ch <- prometheus.MustNewConstMetric(descWarmTasks, prometheus.GaugeValue, float64(tasks), q)
		ch <- prometheus.MustNewConstMetric(descWarmRecycles, prometheus.CounterValue, float64(p.recycledMaxTasks.Load()), q, "max_tasks")
		ch <- prometheus.MustNewConstMetric(descWarmRecycles, prometheus.CounterValue, float64(p.recycledMaxRSS.Load()), q, "max_rss")
		ch <- prometheus.MustNewConstMetric(descWarmRecycles, prometheus.CounterValue, float64(p.recycledIdle.Load()), q, "idle_timeout")
		ch <- prometheus.MustNewConstMetric(descWarmCrashes, prometheus.CounterValue, float64(p.crashes.Load()), q)
		ch <- prometheus.MustNewConstMetric(descWarmKills, prometheus.CounterValue, float64(p.kills.Load()), q)
	}
}

// RunningGauge is a gauge of w's running tasks and callbacks, read when
// scraped, for the binary to register.
func (w *Worker) RunningGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricRunning,
		Help: "Tasks and callbacks running on this worker."}, func() float64 { return float64(w.Running()) })
}

// Metrics are the worker's Prometheus metrics. Their per-queue series are
// resolved once in New, so a task only touches atomic counters.
type Metrics struct {
	started       *prometheus.CounterVec
	finished      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	heartbeats    prometheus.Counter
	registryBeats prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricTasksStarted,
			Help: "Task tries started on this worker, by queue."}, []string{"queue"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricTasksFinished,
			Help: "Task tries ended on this worker, by queue and the state reported."}, []string{"queue", "state"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricTaskDuration,
			Help:    "Run time of task tries on this worker (process start to end), by queue.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}}, []string{"queue"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricTaskHeartbeats,
			Help: "Task heartbeats sent to the executor."}),
		registryBeats: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricRegistryHeartbeat,
			Help: "Heartbeats written to the worker registry."}),
	}
	reg.MustRegister(m.started, m.finished, m.duration, m.heartbeats, m.registryBeats)
	return m
}

// queueMetrics are one queue's series.
type queueMetrics struct {
	started  prometheus.Counter
	duration prometheus.Observer
	finished map[activity.State]prometheus.Counter
}

// forQueues resolves the series of queues; nil when m is nil.
func (m *Metrics) forQueues(queues []string) map[string]*queueMetrics {
	if m == nil {
		return nil
	}
	out := make(map[string]*queueMetrics, len(queues))
	for _, q := range queues {
		qm := &queueMetrics{
			started:  m.started.WithLabelValues(q),
			duration: m.duration.WithLabelValues(q),
			finished: map[activity.State]prometheus.Counter{},
		}
		for _, st := range []activity.State{activity.StateSuccess, activity.StateFailed, activity.StateSkipped,
			activity.StateUpForRetry, activity.StateUpForReschedule, activity.StateDeferred, activity.StateRemoved} {
			qm.finished[st] = m.finished.WithLabelValues(q, string(st))
		}
		out[q] = qm
	}
	return out
}
