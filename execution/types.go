package execution

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// APIVersion is the Execution API version this package speaks.
const APIVersion = "2026-11-22"

// Header names.
const (
	HeaderVersion      = "Taskwire-API-Version"
	HeaderRefreshToken = "Refreshed-API-Token"
	// HeaderHeartbeatAge answers a heartbeat the executor accepted without
	// writing it (the record's heartbeat_at was recent enough): the age of
	// the recorded one in milliseconds, by the executor's clock, as its
	// zombie check will count it. A worker that times its own kill from
	// its last heartbeat that reached the record counts from that long
	// before it sent this one.
	HeaderHeartbeatAge = "Taskwire-Heartbeat-Age-Ms"
)

// RunRequest is the body of PATCH task-instances/{id}/run.
type RunRequest struct {
	Hostname   string    `json:"hostname"`
	PID        int       `json:"pid"`
	WorkerID   string    `json:"worker_id"`
	ActivityID string    `json:"activity_id"`
	StartDate  time.Time `json:"start_date"`
}

// RunResponse is the run context answered by …/run.
type RunResponse struct {
	TI               activity.TI       `json:"ti"`
	MaxTries         int               `json:"max_tries"`
	ShouldRetry      bool              `json:"should_retry"`
	NextMethod       string            `json:"next_method,omitempty"`
	NextKwargs       map[string]any    `json:"next_kwargs,omitempty"`
	ExecutionTimeout activity.Duration `json:"execution_timeout,omitempty"`
	// ZombieThreshold is the executor's: a try with no heartbeat for this
	// long may be failed as a zombie and retried elsewhere. The worker kills
	// a try it could not heartbeat for a margin less than this, so that two
	// tries never run at once (see the worker package). Zero from an
	// executor that does not say: the worker assumes the default, 30s.
	ZombieThreshold activity.Duration `json:"zombie_threshold,omitempty"`
	// Token is the execution token for every further call of this try.
	Token string `json:"token"`
	// RescheduleCount and FirstRescheduleAt: a rescheduled try's
	// reschedules so far and the start of its first rescheduled run.
	RescheduleCount   int        `json:"reschedule_count,omitempty"`
	FirstRescheduleAt *time.Time `json:"first_reschedule_at,omitempty"`
}

// StateRequest is the body of PATCH task-instances/{id}/state.
type StateRequest struct {
	State   activity.State `json:"state"`
	EndDate time.Time      `json:"end_date"`
	Reason  string         `json:"reason,omitempty"`
	// Deferral (state deferred).
	Trigger    *activity.Trigger `json:"trigger,omitempty"`
	NextMethod string            `json:"next_method,omitempty"`
	NextKwargs map[string]any    `json:"next_kwargs,omitempty"`
	// RescheduleDate is when an up_for_reschedule try runs again.
	RescheduleDate *time.Time `json:"reschedule_date,omitempty"`
}

// SkipDownstreamRequest is the body of PATCH
// task-instances/{id}/skip-downstream (Airflow's SkipDownstreamTasks):
// the tasks of the run, downstream of the calling task, to skip.
type SkipDownstreamRequest struct {
	Tasks []SkipTask `json:"tasks"`
}

// SkipTask names what a SkipDownstreamRequest skips: every instance of
// TaskID (MapIndex -1), or its instance MapIndex. On the wire, as in
// Airflow's TISkippedDownstreamTasksStatePayload, it is a task id (the
// whole task) or a [task_id, map_index] pair.
type SkipTask struct {
	TaskID   string
	MapIndex int
}

// MarshalJSON writes a task id, or a pair when MapIndex is not -1.
func (s SkipTask) MarshalJSON() ([]byte, error) {
	if s.MapIndex == -1 {
		return json.Marshal(s.TaskID)
	}
	return json.Marshal([]any{s.TaskID, s.MapIndex})
}

// UnmarshalJSON reads a task id or a [task_id, map_index] pair.
func (s *SkipTask) UnmarshalJSON(b []byte) error {
	var id string
	if err := json.Unmarshal(b, &id); err == nil {
		*s = SkipTask{TaskID: id, MapIndex: -1}
		return nil
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
		return errors.New("want a task id or a [task_id, map_index] pair")
	}
	var idx int
	if json.Unmarshal(pair[0], &id) != nil || json.Unmarshal(pair[1], &idx) != nil {
		return errors.New("want a [task_id, map_index] pair: a string and an integer")
	}
	*s = SkipTask{TaskID: id, MapIndex: idx}
	return nil
}

// TaskStateResponse is the answer of GET task-instances/{id}/state.
type TaskStateResponse struct {
	State     activity.State `json:"state"`
	TryNumber int            `json:"try_number"`
}

// HeartbeatRequest is the body of PUT task-instances/{id}/heartbeat.
type HeartbeatRequest struct {
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
	WorkerID string `json:"worker_id"`
}

// VariableBody is the body of PUT variables/{key} and the answer of GET.
type VariableBody struct {
	Key         string `json:"key,omitempty"`
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
}

// XComBody is the body of POST xcoms/… and the answer of GET.
type XComBody struct {
	Key   string `json:"key,omitempty"`
	Value any    `json:"value"`
}

// ErrorBody is every error answer of the API.
type ErrorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
	// Limit is, for "too_large" (413), the limit that was exceeded, in
	// bytes; absent when unknown.
	Limit int64 `json:"limit,omitempty"`
}
