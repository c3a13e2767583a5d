package triggerer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/trigger"
)

// Metric names.
const (
	MetricTriggersHeld  = "taskwire_triggerer_triggers_held"
	MetricTriggersFired = "taskwire_triggerer_triggers_fired_total"
	MetricTimerLateness = "taskwire_triggerer_timer_lateness_seconds"
	// MetricRateLimited counts the requests of polling triggers that had
	// to wait for their rate key's limit.
	MetricRateLimited = "taskwire_rate_limited_total"
)

// Metrics are the triggerer's Prometheus metrics.
type Metrics struct {
	held     prometheus.Gauge
	firedCnt *prometheus.CounterVec
	lateness prometheus.Histogram
	limited  *prometheus.CounterVec
}

func (m *Metrics) rateLimited(key string) { m.limited.WithLabelValues(key).Inc() }

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricTriggersHeld,
			Help: "Triggers this triggerer runs now."}),
		firedCnt: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricTriggersFired,
			Help: "Triggers fired, by kind and result (event or error)."}, []string{"kind", "result"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricTimerLateness,
			Help:    "How late datetime and timedelta triggers fired after their moment.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRateLimited,
			Help: "Requests of polling triggers that waited for their rate key's limit, by key."}, []string{"key"}),
	}
	reg.MustRegister(m.held, m.firedCnt, m.lateness, m.limited)
	return m
}

func (m *Metrics) fired(t activity.Trigger, ev trigger.Event) {
	result := "event"
	if ev.Err != "" {
		result = "error"
	}
	m.firedCnt.WithLabelValues(t.Kind, result).Inc()
	if ev.Err != "" || (t.Kind != trigger.KindDateTime && t.Kind != trigger.KindTimeDelta) {
		return
	}
	if s, ok := t.Kwargs["moment"].(string); ok {
		if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
			m.lateness.Observe(max(time.Since(at), 0).Seconds())
		}
	}
}
