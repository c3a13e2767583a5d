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
)

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
			activity.StateUpForRetry, activity.StateDeferred, activity.StateRemoved} {
			qm.finished[st] = m.finished.WithLabelValues(q, string(st))
		}
		out[q] = qm
	}
	return out
}
