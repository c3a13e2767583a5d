package executor

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskwire/taskwire/activity"
)

// Metric names.
const (
	MetricActivitiesQueued   = "taskwire_executor_activities_queued_total"
	MetricActivitiesStarted  = "taskwire_executor_activities_started_total"
	MetricActivitiesFinished = "taskwire_executor_activities_finished_total"
	MetricTaskDuration       = "taskwire_executor_task_duration_seconds"
	MetricDispatchLatency    = "taskwire_executor_dispatch_latency_seconds"
	MetricHeartbeats         = "taskwire_executor_heartbeats_total"
	MetricRetries            = "taskwire_executor_retries_total"
	MetricZombies            = "taskwire_executor_zombies_total"
	// MetricPoolSlots is each pool's slots by state: total (-1: no
	// limit), occupied (held by admitted tasks), open, and waiting (wanted
	// by the tasks waiting for admission).
	MetricPoolSlots = "taskwire_pool_slots"
)

// Metrics are the executor's Prometheus metrics. Each counts what this
// executor did (sum over replicas for the cluster). Updating one is an
// atomic add or a histogram observation: no round trip, no shared lock
// beyond the label lookup.
type Metrics struct {
	queued, started, finished, retries *prometheus.CounterVec
	duration, dispatch                 *prometheus.HistogramVec
	heartbeats, zombies                prometheus.Counter
	// pools reads the pools at scrape time (set by the executor).
	pools atomic.Pointer[func() []activity.Pool]
}

// poolCollector collects MetricPoolSlots at scrape time.
type poolCollector struct{ m *Metrics }

var poolSlotsDesc = prometheus.NewDesc(MetricPoolSlots,
	"Slots of each pool by state: total (-1: no limit), occupied (held by admitted tasks), open, waiting (wanted by tasks waiting for admission).",
	[]string{"pool", "state"}, nil)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- poolSlotsDesc }

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.m.pools.Load()
	if f == nil {
		return
	}
	for _, p := range (*f)() {
		for _, v := range []struct {
			state string
			n     int
		}{{"total", p.Slots}, {"occupied", p.Occupied}, {"open", p.Open}, {"waiting", p.WaitingSlots}} {
			ch <- prometheus.MustNewConstMetric(poolSlotsDesc, prometheus.GaugeValue, float64(v.n), p.Name, v.state)
		}
	}
}

// setPools makes the pool gauges read f.
func (m *Metrics) setPools(f func() []activity.Pool) {
	if m != nil {
		m.pools.Store(&f)
	}
}

var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricActivitiesQueued,
			Help: "ExecuteTask activities published, by queue and why (submit, retry, resume)."}, []string{"queue", "reason"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricActivitiesStarted,
			Help: "Task tries accepted as running, by queue."}, []string{"queue"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricActivitiesFinished,
			Help: "Task tries ended, by queue and state (success, failed, skipped, up_for_retry, up_for_reschedule, deferred, removed, cancelled)."}, []string{"queue", "state"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRetries,
			Help: "Tries ended up_for_retry (a retry is scheduled), by queue."}, []string{"queue"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricTaskDuration,
			Help: "Run time of ended tries (running to its end), by queue and state.", Buckets: durationBuckets}, []string{"queue", "state"}),
		dispatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricDispatchLatency,
			Help:    "Time from queued to running (a worker's …/run accepted), by queue.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"queue"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricHeartbeats,
			Help: "Task heartbeats accepted."}),
		zombies: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricZombies,
			Help: "Running tries failed as zombies (no heartbeat within the zombie threshold)."}),
	}
	reg.MustRegister(m.queued, m.started, m.finished, m.retries, m.duration, m.dispatch, m.heartbeats, m.zombies, poolCollector{m})
	return m
}

// The methods below do nothing on a nil *Metrics.

func (m *Metrics) onQueued(queue, reason string) {
	if m != nil {
		m.queued.WithLabelValues(queue, reason).Inc()
	}
}

func (m *Metrics) onStarted(ti *activity.TaskInstance, now time.Time) {
	if m == nil {
		return
	}
	m.started.WithLabelValues(ti.Queue).Inc()
	if ti.QueuedAt != nil {
		m.dispatch.WithLabelValues(ti.Queue).Observe(max(now.Sub(*ti.QueuedAt), 0).Seconds())
	}
}

// onEnded counts a try that left running (or a task cancelled).
func (m *Metrics) onEnded(ti *activity.TaskInstance) {
	if m == nil {
		return
	}
	st := string(ti.State)
	// The duration first: a scrape that sees an end counted in finished
	// also sees its duration (a scraper waiting for the count reads both).
	if ti.StartDate != nil && ti.EndDate != nil {
		m.duration.WithLabelValues(ti.Queue, st).Observe(max(ti.EndDate.Sub(*ti.StartDate), 0).Seconds())
	}
	if ti.State == activity.StateUpForRetry {
		m.retries.WithLabelValues(ti.Queue).Inc()
	}
	m.finished.WithLabelValues(ti.Queue, st).Inc()
}

func (m *Metrics) onHeartbeat() {
	if m != nil {
		m.heartbeats.Inc()
	}
}

func (m *Metrics) onZombie() {
	if m != nil {
		m.zombies.Inc()
	}
}
