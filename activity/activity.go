package activity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind names an activity kind, AIP-72's queue_activity(kind, context).
type Kind string

// Activity kinds.
const (
	KindExecuteTask Kind = "ExecuteTask"
	KindRunCallback Kind = "RunCallback"
)

// ErrInvalid is matched by every validation error of this package.
var ErrInvalid = errors.New("invalid activity")

// MaxSizeDefault bounds an encoded activity; larger ones are refused.
const MaxSizeDefault = 1 << 20

// Entrypoint says what a worker runs. Command runs an executable with no SDK
// (the "command" runtime); Task names a task registered in the SDK runtime
// configured for the activity's queue.
type Entrypoint struct {
	Command []string          `json:"command,omitempty" yaml:"command,omitempty"`
	Task    string            `json:"task,omitempty" yaml:"task,omitempty"`
	Env     map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
}

// RetryPolicy says how often and when a failed task runs again.
type RetryPolicy struct {
	// Retries is how many times a failed try is retried (max tries = Retries+1).
	Retries int `json:"retries,omitempty" yaml:"retries,omitempty"`
	// Delay before the first retry; default 1s.
	Delay Duration `json:"retry_delay,omitempty" yaml:"retry_delay,omitempty"`
	// Exponential doubles the delay for each further try.
	Exponential bool `json:"retry_exponential_backoff,omitempty" yaml:"retry_exponential_backoff,omitempty"`
	// MaxDelay caps the delay; default 1h.
	MaxDelay Duration `json:"max_retry_delay,omitempty" yaml:"max_retry_delay,omitempty"`
}

// RetryDelayDefault and MaxRetryDelayDefault apply when a policy leaves them zero.
const (
	RetryDelayDefault    = time.Second
	MaxRetryDelayDefault = time.Hour
)

// DelayFor returns the delay before try number next (2 for the first retry).
func (p RetryPolicy) DelayFor(next int) time.Duration {
	d := p.Delay.D()
	if d <= 0 {
		d = RetryDelayDefault
	}
	maxD := p.MaxDelay.D()
	if maxD <= 0 {
		maxD = MaxRetryDelayDefault
	}
	if p.Exponential {
		for i := 2; i < next && d < maxD; i++ {
			d *= 2
		}
	}
	return min(d, maxD)
}

// Callback is run by a worker as a RunCallback activity when its task
// instance reaches the state it is attached to.
type Callback struct {
	Entrypoint `yaml:",inline"`
	// Queue to run on; default the task's queue.
	Queue string `json:"queue,omitempty" yaml:"queue,omitempty"`
}

// Callbacks attach callbacks to task outcomes.
type Callbacks struct {
	OnSuccess *Callback `json:"on_success,omitempty" yaml:"on_success,omitempty"`
	OnFailure *Callback `json:"on_failure,omitempty" yaml:"on_failure,omitempty"`
	OnRetry   *Callback `json:"on_retry,omitempty" yaml:"on_retry,omitempty"`
}

// TaskSpec is what a caller of queue_activity asks to run: the body of the
// public API's POST /api/v1/activities and of `executor submit -f`.
type TaskSpec struct {
	DagID    string         `json:"dag_id,omitempty" yaml:"dag_id,omitempty"`
	TaskID   string         `json:"task_id,omitempty" yaml:"task_id,omitempty"`
	RunID    string         `json:"run_id,omitempty" yaml:"run_id,omitempty"`
	MapIndex *int           `json:"map_index,omitempty" yaml:"map_index,omitempty"`
	Queue    string         `json:"queue" yaml:"queue"`
	Params   map[string]any `json:"params,omitempty" yaml:"params,omitempty"`
	// ExecutionTimeout bounds the task's running time; zero means none.
	ExecutionTimeout Duration `json:"execution_timeout,omitempty" yaml:"execution_timeout,omitempty"`
	Entrypoint       `yaml:",inline"`
	RetryPolicy      `yaml:",inline"`
	Callbacks        Callbacks `json:"callbacks,omitempty" yaml:"callbacks,omitempty"`
	// Pool names the pool whose slots the task takes while queued to a
	// worker, running (and deferred, if the pool counts deferred tasks);
	// empty means default_pool. PoolSlots is how many (default 1).
	Pool      string `json:"pool,omitempty" yaml:"pool,omitempty"`
	PoolSlots int    `json:"pool_slots,omitempty" yaml:"pool_slots,omitempty"`
	// PriorityWeight orders the tasks waiting for admission: the highest
	// first, ties first come first served. Default 1.
	PriorityWeight *int `json:"priority_weight,omitempty" yaml:"priority_weight,omitempty"`
	// MaxActiveTisPerDag, when positive, bounds how many instances of this
	// task (dag_id, task_id) across all runs are admitted at once.
	MaxActiveTisPerDag int `json:"max_active_tis_per_dag,omitempty" yaml:"max_active_tis_per_dag,omitempty"`
}

// onlyOf reports whether s is 1 to max bytes, each allowed. (A regexp
// would cost every process that imports this package almost a millisecond
// to compile at start, task processes included.)
func onlyOf(s string, max int, allowed func(byte) bool) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return false
		}
	}
	return true
}

func queueByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// keyByte is the alphabet of dag_id and task_id: Airflow's KEY_REGEX
// (airflow.sdk's validate_key, `^[\w.-]+$`) restricted to ASCII, as NATS
// subjects and KV keys are.
func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '-'
}

// runIDByte is the alphabet of run_id: a key's, plus ':', '+' and '@' of
// Airflow's run ids ("manual__2026-01-02T03:04:05+00:00").
func runIDByte(c byte) bool {
	return keyByte(c) || c == ':' || c == '+' || c == '@'
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateQueue checks a queue name: [a-z0-9_-]{1,64}.
func ValidateQueue(q string) error {
	if !onlyOf(q, 64, queueByte) {
		return invalid("queue %q must match [a-z0-9_-]{1,64}", CutValue(q))
	}
	return nil
}

// ValidateKey checks a dag_id or task_id (named field in the error) as
// Airflow's validate_key does: 1-250 characters of [A-Za-z0-9_.-]; and, as
// the id goes in URL paths, subjects and keys, not "." or "..", nor
// containing "..".
func ValidateKey(field, v string) error {
	return validateID(field, v, keyByte, "[A-Za-z0-9_.-]")
}

// ValidateRunID checks a run_id: 1-250 characters of [A-Za-z0-9_.:+@-],
// not "." or "..", nor containing "..".
func ValidateRunID(v string) error {
	return validateID("run_id", v, runIDByte, "[A-Za-z0-9_.:+@-]")
}

func validateID(field, v string, allowed func(byte) bool, alphabet string) error {
	if !onlyOf(v, 250, allowed) {
		return invalid("%s %q must be 1-250 characters of %s", field, CutValue(v), alphabet)
	}
	// A path segment "." or ".." would be cleaned out of the URLs the id
	// goes in, and "a..b" is an empty token of the subjects and keys
	// built from it.
	if v == "." || v == ".." || strings.Contains(v, "..") {
		return invalid("%s %q must not be \".\" or \"..\" nor contain \"..\"", field, v)
	}
	return nil
}

// valueEchoMax bounds a value quoted back in a validation error.
const valueEchoMax = 200

// CutValue cuts v to 200 bytes for an error message, saying how
// long it was.
func CutValue(v string) string {
	if len(v) <= valueEchoMax {
		return v
	}
	cut := valueEchoMax
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d bytes)", v[:cut], len(v))
}

func (e Entrypoint) validate() error {
	switch {
	case len(e.Command) == 0 && e.Task == "":
		return invalid("entrypoint needs a command or a task")
	case len(e.Command) > 0 && e.Task != "":
		return invalid("entrypoint has both a command and a task")
	case len(e.Command) > 0 && e.Command[0] == "":
		return invalid("entrypoint command has an empty program")
	}
	return nil
}

// Validate checks a spec after defaults were applied.
func (s *TaskSpec) Validate() error {
	if err := ValidateQueue(s.Queue); err != nil {
		return err
	}
	// The entrypoint first: without one, task_id has no default either, and
	// the missing entrypoint is what the caller needs to hear about.
	if err := s.Entrypoint.validate(); err != nil {
		return err
	}
	if err := ValidateKey("dag_id", s.DagID); err != nil {
		return err
	}
	if err := ValidateKey("task_id", s.TaskID); err != nil {
		return err
	}
	if err := ValidateRunID(s.RunID); err != nil {
		return err
	}
	if s.Retries < 0 || s.Retries > 100 {
		return invalid("retries %d out of range 0-100", s.Retries)
	}
	if s.ExecutionTimeout < 0 || s.Delay < 0 || s.MaxDelay < 0 {
		return invalid("durations must not be negative")
	}
	if s.Pool != "" {
		if err := ValidatePool(s.Pool); err != nil {
			return err
		}
	}
	if s.MaxActiveTisPerDag < 0 || s.MaxActiveTisPerDag > PoolSlotsMax {
		return invalid("max_active_tis_per_dag %d out of range 0-%d", s.MaxActiveTisPerDag, PoolSlotsMax)
	}
	if s.PoolSlots < 0 || s.PoolSlots > PoolSlotsMax {
		return invalid("pool_slots %d out of range 1-%d", s.PoolSlots, PoolSlotsMax)
	}
	for name, cb := range map[string]*Callback{"on_success": s.Callbacks.OnSuccess, "on_failure": s.Callbacks.OnFailure, "on_retry": s.Callbacks.OnRetry} {
		if cb == nil {
			continue
		}
		if err := cb.Entrypoint.validate(); err != nil {
			return fmt.Errorf("callback %s: %w", name, err)
		}
		if cb.Queue != "" {
			if err := ValidateQueue(cb.Queue); err != nil {
				return fmt.Errorf("callback %s: %w", name, err)
			}
		}
	}
	return nil
}

// WithDefaults fills the ids a caller may leave out: dag_id "adhoc", task_id
// from the entrypoint, run_id "manual__<now>", map_index -1.
func (s TaskSpec) WithDefaults(now time.Time) TaskSpec {
	if s.DagID == "" {
		s.DagID = "adhoc"
	}
	if s.TaskID == "" {
		s.TaskID = s.Task
		if s.TaskID == "" && len(s.Command) > 0 {
			s.TaskID = sanitizeID(s.Command[0])
		}
	}
	if s.RunID == "" {
		s.RunID = "manual__" + now.UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	if s.MapIndex == nil {
		m := -1
		s.MapIndex = &m
	}
	if s.PoolSlots == 0 {
		s.PoolSlots = 1
	}
	return s
}

func sanitizeID(s string) string {
	if i := bytes.LastIndexByte([]byte(s), '/'); i >= 0 {
		s = s[i+1:]
	}
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			out[i] = '_'
		}
	}
	if len(out) == 0 {
		return "task"
	}
	if len(out) > 200 {
		out = out[:200]
	}
	return string(out)
}

// TI identifies one try of a task instance.
type TI struct {
	ID        string `json:"id"`
	DagID     string `json:"dag_id"`
	TaskID    string `json:"task_id"`
	RunID     string `json:"run_id"`
	MapIndex  int    `json:"map_index"`
	TryNumber int    `json:"try_number"`
}

// ExecuteTask asks a worker to run one try of a task instance.
type ExecuteTask struct {
	// ID is the activity id, also the JetStream Nats-Msg-Id: "<ti_id>.<dispatch>".
	ID string `json:"id"`
	// Token is the workload token, accepted only by the Execution API's …/run.
	Token            string         `json:"token"`
	TI               TI             `json:"ti"`
	Queue            string         `json:"queue"`
	Entrypoint       Entrypoint     `json:"entrypoint"`
	Params           map[string]any `json:"params,omitempty"`
	NextMethod       string         `json:"next_method,omitempty"`
	NextKwargs       map[string]any `json:"next_kwargs,omitempty"`
	ExecutionTimeout Duration       `json:"execution_timeout,omitempty"`
	Retry            RetryPolicy    `json:"retry_policy"`
	QueuedAt         time.Time      `json:"queued_at"`
	// DagRun is the DAG run the task instance belongs to, if any.
	DagRun *DagRun `json:"dag_run,omitempty"`
}

// RunCallback asks a worker to run a callback about a task instance. It
// changes no task state.
type RunCallback struct {
	ID string `json:"id"`
	// Token is a workload token for the task instance the callback concerns.
	Token string `json:"token"`
	// On is the outcome that fired it: on_success, on_failure or on_retry.
	On         string     `json:"on"`
	TI         TI         `json:"ti"`
	State      State      `json:"state"`
	Reason     string     `json:"reason,omitempty"`
	Queue      string     `json:"queue"`
	Entrypoint Entrypoint `json:"entrypoint"`
	QueuedAt   time.Time  `json:"queued_at"`
}

// Activity is the envelope on the ACTIVITIES stream: exactly one of the
// kind's fields is set.
type Activity struct {
	Kind        Kind         `json:"kind"`
	ExecuteTask *ExecuteTask `json:"execute_task,omitempty"`
	RunCallback *RunCallback `json:"run_callback,omitempty"`
}

// ID returns the activity id.
func (a Activity) ID() string {
	switch {
	case a.ExecuteTask != nil:
		return a.ExecuteTask.ID
	case a.RunCallback != nil:
		return a.RunCallback.ID
	}
	return ""
}

// Queue returns the queue the activity is for.
func (a Activity) Queue() string {
	switch {
	case a.ExecuteTask != nil:
		return a.ExecuteTask.Queue
	case a.RunCallback != nil:
		return a.RunCallback.Queue
	}
	return ""
}

// Marshal encodes a as JSON.
func (a Activity) Marshal() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

// Validate checks that a is well formed.
func (a Activity) Validate() error {
	switch a.Kind {
	case KindExecuteTask:
		if a.ExecuteTask == nil || a.RunCallback != nil {
			return invalid("kind ExecuteTask needs execute_task and only it")
		}
		t := a.ExecuteTask
		if err := validateTI(t.TI); err != nil {
			return err
		}
		if t.ID == "" || t.Token == "" {
			return invalid("execute_task needs id and token")
		}
		if err := ValidateQueue(t.Queue); err != nil {
			return err
		}
		return t.Entrypoint.validate()
	case KindRunCallback:
		if a.RunCallback == nil || a.ExecuteTask != nil {
			return invalid("kind RunCallback needs run_callback and only it")
		}
		c := a.RunCallback
		if err := validateTI(c.TI); err != nil {
			return err
		}
		if c.ID == "" || c.Token == "" {
			return invalid("run_callback needs id and token")
		}
		if err := ValidateQueue(c.Queue); err != nil {
			return err
		}
		return c.Entrypoint.validate()
	default:
		return invalid("unknown kind %q", CutValue(string(a.Kind)))
	}
}

func validateTI(ti TI) error {
	if ti.ID == "" || ti.DagID == "" || ti.TaskID == "" || ti.RunID == "" {
		return invalid("ti needs id, dag_id, task_id and run_id")
	}
	if ti.TryNumber < 1 {
		return invalid("ti try_number %d must be at least 1", ti.TryNumber)
	}
	return nil
}

// Decode parses and validates an activity. Unknown fields are refused so a
// producer's typo is not silently dropped.
func Decode(data []byte) (Activity, error) {
	var a Activity
	if len(data) > MaxSizeDefault {
		return a, invalid("activity of %d bytes exceeds %d", len(data), MaxSizeDefault)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Activity{}, fmt.Errorf("%w: decode: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Activity{}, invalid("trailing data after activity")
	}
	if err := a.Validate(); err != nil {
		return Activity{}, err
	}
	return a, nil
}
