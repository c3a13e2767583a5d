package dag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/activity"
)

// Defaults.
const (
	// MapSizeMaxDefault caps how many task instances one expand creates.
	MapSizeMaxDefault = 1024
	// TasksMax bounds the tasks of one DAG.
	TasksMax = 10_000
	// ReturnValueKey is the XCom key of a task's return value.
	ReturnValueKey = "return_value"
)

// DAG is a DAG document: the body of PUT /api/v1/dags/{dag_id} and of
// `executor dags apply -f`, in YAML or JSON.
type DAG struct {
	DagID       string `json:"dag_id" yaml:"dag_id"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Schedule is a cron expression ("0 3 * * *"), a preset (@hourly,
	// @daily, @weekly, @monthly, @yearly) or a fixed interval ("@every
	// 30m"); empty for a DAG run only when triggered.
	Schedule string `json:"schedule,omitempty" yaml:"schedule,omitempty"`
	// Timezone is the IANA zone the schedule is read in; default UTC.
	Timezone string `json:"timezone,omitempty" yaml:"timezone,omitempty"`
	// StartDate is the first logical date a schedule may have; default the
	// time the DAG is first stored.
	StartDate *time.Time `json:"start_date,omitempty" yaml:"start_date,omitempty"`
	// Catchup makes a schedule create the runs it missed (since StartDate,
	// or while the executor was down); default false: only the latest.
	Catchup bool `json:"catchup,omitempty" yaml:"catchup,omitempty"`
	// MaxActiveRuns bounds the runs running at once (more wait queued,
	// oldest first); 0 is no bound.
	MaxActiveRuns int `json:"max_active_runs,omitempty" yaml:"max_active_runs,omitempty"`
	// MaxActiveTasks bounds the task instances of one run queued or
	// running at once; 0 is no bound.
	MaxActiveTasks int `json:"max_active_tasks,omitempty" yaml:"max_active_tasks,omitempty"`
	// MapSizeMax caps one expand's task instances; default 1,024.
	MapSizeMax int `json:"max_map_length,omitempty" yaml:"max_map_length,omitempty"`
	// Params are the DAG's parameters, under every task's own.
	Params      map[string]any `json:"params,omitempty" yaml:"params,omitempty"`
	DefaultArgs TaskDefaults   `json:"default_args,omitzero" yaml:"default_args,omitempty"`
	// OnSuccess and OnFailure run as RunCallback activities when a run ends.
	OnSuccess *activity.Callback `json:"on_success_callback,omitempty" yaml:"on_success_callback,omitempty"`
	OnFailure *activity.Callback `json:"on_failure_callback,omitempty" yaml:"on_failure_callback,omitempty"`
	Tasks     []Task             `json:"tasks" yaml:"tasks" oa:"nonnull"`

	// order caches topo's answer: a stored DAG version does not change,
	// and every evaluation of its runs walks it.
	orderOnce sync.Once
	order     []*Task
	// index maps task ids to their place in Tasks (built with order).
	index map[string]int
}

// TaskDefaults are default_args: what a task leaves unset is taken from here.
type TaskDefaults struct {
	Queue            string             `json:"queue,omitempty" yaml:"queue,omitempty"`
	Retries          *int               `json:"retries,omitempty" yaml:"retries,omitempty"`
	RetryDelay       *activity.Duration `json:"retry_delay,omitempty" yaml:"retry_delay,omitempty"`
	RetryExponential *bool              `json:"retry_exponential_backoff,omitempty" yaml:"retry_exponential_backoff,omitempty"`
	MaxRetryDelay    *activity.Duration `json:"max_retry_delay,omitempty" yaml:"max_retry_delay,omitempty"`
	ExecutionTimeout *activity.Duration `json:"execution_timeout,omitempty" yaml:"execution_timeout,omitempty"`
	TriggerRule      TriggerRule        `json:"trigger_rule,omitempty" yaml:"trigger_rule,omitempty"`
	PriorityWeight   *int               `json:"priority_weight,omitempty" yaml:"priority_weight,omitempty"`
	Pool             string             `json:"pool,omitempty" yaml:"pool,omitempty"`
	PoolSlots        *int               `json:"pool_slots,omitempty" yaml:"pool_slots,omitempty"`
	// MaxActiveTisPerDag bounds the admitted instances of a task across runs.
	MaxActiveTisPerDag *int               `json:"max_active_tis_per_dag,omitempty" yaml:"max_active_tis_per_dag,omitempty"`
	Env                map[string]string  `json:"env,omitempty" yaml:"env,omitempty"`
	Callbacks          activity.Callbacks `json:"callbacks,omitzero" yaml:"callbacks,omitempty"`
}

// Task is one task of a DAG.
type Task struct {
	TaskID string `json:"task_id" yaml:"task_id"`
	Queue  string `json:"queue,omitempty" yaml:"queue,omitempty"`
	// Command or Task is the entrypoint: an argv run by the command
	// runtime, or a task registered in the queue's SDK runtime.
	Command []string          `json:"command,omitempty" yaml:"command,omitempty"`
	Task    string            `json:"task,omitempty" yaml:"task,omitempty"`
	Env     map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	Params  map[string]any    `json:"params,omitempty" yaml:"params,omitempty"`

	Retries          *int               `json:"retries,omitempty" yaml:"retries,omitempty"`
	RetryDelay       *activity.Duration `json:"retry_delay,omitempty" yaml:"retry_delay,omitempty"`
	RetryExponential *bool              `json:"retry_exponential_backoff,omitempty" yaml:"retry_exponential_backoff,omitempty"`
	MaxRetryDelay    *activity.Duration `json:"max_retry_delay,omitempty" yaml:"max_retry_delay,omitempty"`
	ExecutionTimeout *activity.Duration `json:"execution_timeout,omitempty" yaml:"execution_timeout,omitempty"`

	DependsOn      []string    `json:"depends_on,omitempty" yaml:"depends_on,omitempty"`
	TriggerRule    TriggerRule `json:"trigger_rule,omitempty" yaml:"trigger_rule,omitempty"`
	PriorityWeight *int        `json:"priority_weight,omitempty" yaml:"priority_weight,omitempty"`
	// Pool and PoolSlots name the pool the task takes slots of (admission).
	Pool      string `json:"pool,omitempty" yaml:"pool,omitempty"`
	PoolSlots *int   `json:"pool_slots,omitempty" yaml:"pool_slots,omitempty"`
	// MaxActiveTisPerDag bounds how many instances of the task, across all
	// runs of the DAG, are admitted at once.
	MaxActiveTisPerDag *int               `json:"max_active_tis_per_dag,omitempty" yaml:"max_active_tis_per_dag,omitempty"`
	Callbacks          activity.Callbacks `json:"callbacks,omitzero" yaml:"callbacks,omitempty"`
	// Expand maps the task: one task instance per element of a literal
	// list or of an upstream's XCom, with the element as a parameter under
	// the expand's only key.
	Expand map[string]Expand `json:"expand,omitempty" yaml:"expand,omitempty"`
}

// Expand is what a mapped task's parameter takes its values from: a
// literal list, or the XCom Key (default return_value) of upstream From.
type Expand struct {
	Literal []any  `json:"-" yaml:"-"`
	From    string `json:"from,omitempty" yaml:"from,omitempty"`
	Key     string `json:"key,omitempty" yaml:"key,omitempty"`
}

// MarshalJSON writes a literal as a list, else {from, key}.
func (x Expand) MarshalJSON() ([]byte, error) {
	if x.From == "" {
		if x.Literal == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(x.Literal)
	}
	type plain Expand
	return json.Marshal(plain(x))
}

// UnmarshalJSON reads a list or {from, key}.
func (x *Expand) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		*x = Expand{Literal: []any{}}
		return json.Unmarshal(b, &x.Literal)
	}
	type plain Expand
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*x = Expand(p)
	return nil
}

// UnmarshalYAML reads a sequence or {from, key}.
func (x *Expand) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		*x = Expand{Literal: []any{}}
		return n.Decode(&x.Literal)
	}
	if n.Kind != yaml.MappingNode {
		// A *yaml.TypeError lets the decoder go on and report every problem.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expand takes a list or {from: TASK_ID}", n.Line)}}
	}
	type plain Expand
	var p plain
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "from", "key":
		default:
			return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expand: unknown field %q (want from, key)", n.Content[i].Line, k)}}
		}
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	*x = Expand(p)
	return nil
}

// MarshalYAML writes a literal as a list, else {from, key}.
func (x Expand) MarshalYAML() (any, error) {
	if x.From == "" {
		return x.Literal, nil
	}
	type plain Expand
	return plain(x), nil
}

// ExpandArg returns a mapped task's only expand argument; ok is false for
// a task that is not mapped.
func (t *Task) ExpandArg() (name string, x Expand, ok bool) {
	for k, v := range t.Expand {
		return k, v, true
	}
	return "", Expand{}, false
}

// Mapped reports whether t has an expand.
func (t *Task) Mapped() bool { return len(t.Expand) > 0 }

// Rule returns the task's trigger rule, all_success when unset.
func (t *Task) Rule() TriggerRule {
	if t.TriggerRule == "" {
		return AllSuccess
	}
	return t.TriggerRule
}

// ErrNotFound is matched by lookups of an unknown DAG or run.
var ErrNotFound = errors.New("not found")
