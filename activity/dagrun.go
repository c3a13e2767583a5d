package activity

import "time"

// DagRun is the DAG run a task instance belongs to, as its task sees it
// (Airflow's dag_run in the task context). A task instance queued by a
// DAG run carries it; one submitted alone has none.
type DagRun struct {
	RunID       string         `json:"run_id"`
	LogicalDate time.Time      `json:"logical_date"`
	RunType     string         `json:"run_type,omitempty"`
	Conf        map[string]any `json:"conf,omitempty"`
	DagVersion  int            `json:"dag_version,omitempty"`
}
