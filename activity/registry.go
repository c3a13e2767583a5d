package activity

import "time"

// States of a worker or triggerer in the registry, as operators see them.
const (
	// MemberLive heartbeats and takes work.
	MemberLive = "live"
	// MemberDraining was put in maintenance: it takes no new work and
	// finishes what it runs.
	MemberDraining = "draining"
	// MemberLost has not heartbeated for longer than the executor's lost
	// threshold. It stays listed (as lost) until its registry entry expires.
	MemberLost = "lost"
	// MemberAPIUnreachable is a worker that reaches NATS (it heartbeats
	// here) but not the Execution API: it pulls nothing until it reaches
	// it again, and kills its running tries before the executor's zombie
	// threshold.
	MemberAPIUnreachable = "api-unreachable"
)

// WorkerInfo is a worker's entry in the worker registry: what it serves and
// how busy it is, written by the worker on every registry heartbeat.
type WorkerInfo struct {
	ID       string   `json:"id"`
	Hostname string   `json:"hostname"`
	Version  string   `json:"version"`
	Queues   []string `json:"queues"`
	// Concurrency is the worker's number of slots; FreeSlots those not
	// running a task; Running the tasks and callbacks running.
	Concurrency int `json:"concurrency"`
	FreeSlots   int `json:"free_slots"`
	Running     int `json:"running"`
	// Runtimes says each queue's runtime as "QUEUE=PROGRAM", PROGRAM being
	// "command" for the command runtime.
	Runtimes      []string  `json:"runtimes"`
	State         string    `json:"state"`
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// APIUnreachableSince and APIError say, while the worker cannot reach
	// the Execution API, since when and the last error.
	APIUnreachableSince *time.Time `json:"api_unreachable_since,omitempty"`
	APIError            string     `json:"api_error,omitempty"`
}

// TriggererHeartbeat is a triggerer's entry in the triggerers bucket,
// written by the triggerer every heartbeat interval and read by the other
// triggerers (liveness) and the executor (GET /api/v1/triggerers).
type TriggererHeartbeat struct {
	ID       string    `json:"id"`
	Hostname string    `json:"hostname,omitempty"`
	Capacity int       `json:"capacity"`
	Held     int       `json:"held"`
	At       time.Time `json:"at"`
	// StartedAt is when the triggerer started, for operators.
	StartedAt time.Time `json:"started_at"`
}

// TriggererInfo is a triggerer as the registry shows it.
type TriggererInfo struct {
	ID            string    `json:"id"`
	Hostname      string    `json:"hostname"`
	Held          int       `json:"held"`
	State         string    `json:"state"`
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// QueueInfo is one queue's load: activities waiting in JetStream, task
// instances running and deferred, the workers serving it, and the tries
// that ended in the last minute.
type QueueInfo struct {
	Name     string `json:"name"`
	Pending  int    `json:"pending"`
	Running  int    `json:"running"`
	Deferred int    `json:"deferred"`
	// Waiting counts the task instances queued to it that wait for
	// admission (their pool, or another limit), not published yet.
	Waiting int `json:"waiting"`
	// MaxRunning, when positive, bounds the task instances of the queue
	// admitted at once (queued to a worker or running), across all workers.
	MaxRunning         int `json:"max_running,omitempty"`
	Workers            int `json:"workers"`
	FinishedLastMinute int `json:"finished_last_minute"`
	FailedLastMinute   int `json:"failed_last_minute"`
}
