// Package triggerer runs the triggers of deferred tasks, Airflow's
// triggerer: a task that defers frees its worker slot, the executor
// publishes its trigger on the TRIGGERS stream, and a Triggerer claims it,
// runs it as a goroutine (thousands per process; see package trigger for
// the kinds) and publishes one TriggerEvent, which the executor turns back
// into a queued task.
//
// Ownership lives in two key-value buckets. A trigger's claim (owner,
// claimed at, the trigger) is its entry in the triggers bucket, written
// with compare-and-set: a KV create claims a new trigger, an update at the
// revision seen adopts one, a delete at the revision ends it once its event
// is published, and an update with no owner hands it back on Stop. Each
// triggerer writes one heartbeat ([activity.TriggererHeartbeat]) to the
// triggerers bucket every HeartbeatInterval, not one write per trigger;
// the claims of a triggerer silent for DeadAfter (or that said goodbye)
// are adopted by the others, so its triggers run again elsewhere within
// about 30 seconds. A trigger that ran twice is harmless: events are
// published with the trigger id as Nats-Msg-Id and the executor resumes a
// task only if it still waits on that trigger.
//
// Files, one concept each:
//
//	config.go     Config, its defaults and validation
//	triggerer.go  the Triggerer: New, Start, Stop, Snapshot
//	claim.go      the claim wire type and the run state machine
//	              (waiting → fired | halted): claim, adopt, fire, hand back
//	heartbeat.go  the heartbeat and liveness of the other triggerers
//	loops.go      the goroutines: pulling TRIGGERS, watching the buckets,
//	              publishing fired events
//	events.go     "event" triggers, served from one watch of external_events
//	metrics.go    Prometheus metrics
package triggerer
