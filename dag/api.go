package dag

import (
	"time"

	"github.com/taskwire/taskwire/activity"
)

// The public API's DAG and run shapes, shared by the executor and its
// client.

// Record is a DAG as stored: its current document and version, and
// whether it is paused.
type Record struct {
	DagID     string    `json:"dag_id"`
	Version   int       `json:"version"`
	Paused    bool      `json:"is_paused"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	DAG       *DAG      `json:"dag" oa:"nonnull"`
	// NextRunAt is when the schedule's next run is due (nil: none).
	NextRunAt *time.Time `json:"next_dagrun_at,omitempty"`
	// LastScheduled is the logical date of the schedule's latest run.
	LastScheduled *time.Time `json:"last_scheduled,omitempty"`
}

// Summary is a DAG in the list: what the DAGs page shows.
type Summary struct {
	DagID     string     `json:"dag_id"`
	Version   int        `json:"version"`
	Paused    bool       `json:"is_paused"`
	Schedule  string     `json:"schedule,omitempty"`
	Timezone  string     `json:"timezone,omitempty"`
	Tasks     int        `json:"tasks"`
	NextRunAt *time.Time `json:"next_dagrun_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	// LastRuns are the latest runs, the latest first (at most 10).
	LastRuns []RunSummary `json:"last_runs" oa:"nonnull"`
}

// RunSummary is a run without its task instances.
type RunSummary struct {
	RunID       string     `json:"run_id"`
	State       RunState   `json:"state"`
	RunType     string     `json:"run_type"`
	LogicalDate time.Time  `json:"logical_date"`
	StartDate   *time.Time `json:"start_date,omitempty"`
	EndDate     *time.Time `json:"end_date,omitempty"`
	DagVersion  int        `json:"dag_version"`
}

// Summary returns r without its task instances.
func (r *Run) Summary() RunSummary {
	return RunSummary{RunID: r.RunID, State: r.State, RunType: r.RunType, LogicalDate: r.LogicalDate,
		StartDate: r.StartDate, EndDate: r.EndDate, DagVersion: r.DagVersion}
}

// TriggerRequest is the body of POST /api/v1/dags/{dag_id}/runs.
type TriggerRequest struct {
	// RunID names the run; the same run_id again returns the existing
	// run. Default "manual__<logical date>".
	RunID string         `json:"run_id,omitempty"`
	Conf  map[string]any `json:"conf,omitempty"`
	// LogicalDate defaults to now.
	LogicalDate *time.Time `json:"logical_date,omitempty"`
}

// ClearRequest is the body of POST …/runs/{run_id}/clear.
type ClearRequest struct {
	// TaskIDs to clear; none clears every task.
	TaskIDs []string `json:"task_ids,omitempty"`
	// Downstream clears every task downstream of them too.
	Downstream bool `json:"include_downstream,omitempty"`
}

// RunView is a run as the API shows it: its task instances with their
// live states.
type RunView struct {
	DagID       string         `json:"dag_id"`
	RunID       string         `json:"run_id"`
	State       RunState       `json:"state"`
	RunType     string         `json:"run_type"`
	LogicalDate time.Time      `json:"logical_date"`
	Conf        map[string]any `json:"conf,omitempty"`
	DagVersion  int            `json:"dag_version"`
	QueuedAt    time.Time      `json:"queued_at"`
	StartDate   *time.Time     `json:"start_date,omitempty"`
	EndDate     *time.Time     `json:"end_date,omitempty"`
	// Edges are the DAG's dependencies, [upstream, downstream] task ids.
	Edges         [][2]string `json:"edges,omitempty"`
	TaskInstances []RunTI     `json:"task_instances"`
	// Cleared is how many instances a clear made undecided.
	Cleared int `json:"cleared,omitempty"`
	// Counts are the task instances by state.
	Counts map[string]int `json:"counts,omitempty"`
}

// RunTI is one task instance of a run. State is "none" until decided.
type RunTI struct {
	TaskID    string         `json:"task_id"`
	MapIndex  int            `json:"map_index"`
	State     activity.State `json:"state"`
	TIID      string         `json:"ti_id,omitempty"`
	TryNumber int            `json:"try_number,omitempty"`
	Queue     string         `json:"queue,omitempty"`
	StartDate *time.Time     `json:"start_date,omitempty"`
	EndDate   *time.Time     `json:"end_date,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	// Mapped is set on the instances of a mapped task.
	Mapped bool `json:"mapped,omitempty"`
}

// ValidTIState reports whether s is a state a run's task instance may
// show: a task instance's, or none, scheduled, upstream_failed.
func ValidTIState(s activity.State) bool {
	return s.Valid() || s == "none" || s == StateScheduled || s == StateUpstreamFailed
}

// Done reports whether the instance ended (for progress).
func (t RunTI) Done() bool {
	return t.State == StateUpstreamFailed || t.State != "none" && t.State != StateScheduled && t.State.Terminal()
}

// ProblemsBody is the 400 answer to an invalid DAG: every problem.
type ProblemsBody struct {
	Error    string    `json:"error"`
	Detail   string    `json:"detail"`
	Problems []Problem `json:"problems" oa:"nonnull"`
}
