package activity

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Try records one finished or running try of a task instance.
type Try struct {
	TryNumber int        `json:"try_number"`
	State     State      `json:"state"`
	Hostname  string     `json:"hostname,omitempty"`
	WorkerID  string     `json:"worker_id,omitempty"`
	StartDate *time.Time `json:"start_date,omitempty"`
	EndDate   *time.Time `json:"end_date,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// Trigger is what a deferred task waits on. A task names it by Classpath
// and Kwargs; the executor checks and normalizes it (package trigger) and
// fills in Kind, TIID, Try and DeferredAt before it is recorded and handed
// to a triggerer.
type Trigger struct {
	ID        string         `json:"id"`
	Classpath string         `json:"classpath"`
	Kwargs    map[string]any `json:"kwargs,omitempty"`
	// Timeout, when positive, fails the task with "trigger timeout" if the
	// trigger has not fired by DeferredAt+Timeout.
	Timeout Duration `json:"timeout,omitempty"`
	// EndFromTrigger ends the task with the trigger's event instead of
	// resuming it (Airflow's end_from_trigger): success for an event
	// without an end state of its own (TriggerEvent.End); a failed trigger
	// still resumes the task into FailMethod.
	EndFromTrigger bool `json:"end_from_trigger,omitempty"`

	// Kind is the built-in trigger Classpath resolves to.
	Kind string `json:"kind,omitempty"`
	// TIID and Try are the task instance and try that deferred.
	TIID string `json:"ti_id,omitempty"`
	Try  int    `json:"try,omitempty"`
	// DeferredAt is when the executor accepted the deferral.
	DeferredAt time.Time `json:"deferred_at,omitzero"`
	// Token is the trigger token of an "airflow" trigger (one the Python
	// trigger runtime runs): read-only access to connections, variables
	// and its DAG run's XComs while its task waits deferred on it. It is
	// set only on the copy published to the triggerers, never in the
	// task-instance record.
	Token string `json:"token,omitempty"`
}

// TaskInstance is the executor's record of a task instance, stored in the
// task_instances KV bucket under its ID and changed only by compare-and-set.
type TaskInstance struct {
	ID       string `json:"id"`
	DagID    string `json:"dag_id"`
	TaskID   string `json:"task_id"`
	RunID    string `json:"run_id"`
	MapIndex int    `json:"map_index"`
	Queue    string `json:"queue"`

	State     State  `json:"state"`
	TryNumber int    `json:"try_number"`
	MaxTries  int    `json:"max_tries"`
	Reason    string `json:"reason,omitempty"`

	Entrypoint       Entrypoint     `json:"entrypoint"`
	Params           map[string]any `json:"params,omitempty"`
	ExecutionTimeout Duration       `json:"execution_timeout,omitempty"`
	Retry            RetryPolicy    `json:"retry_policy"`
	Callbacks        Callbacks      `json:"callbacks,omitempty"`
	// DagRun is the DAG run that queued the instance, if any.
	DagRun *DagRun `json:"dag_run,omitempty"`
	// Pool, PoolSlots and PriorityWeight are admission's (see TaskSpec).
	Pool           string `json:"pool,omitempty"`
	PoolSlots      int    `json:"pool_slots,omitempty"`
	PriorityWeight int    `json:"priority_weight,omitempty"`
	// MaxActiveTisPerDag bounds the admitted instances of the task across
	// runs (0: no bound).
	MaxActiveTisPerDag int `json:"max_active_tis_per_dag,omitempty"`
	// IdempotencyKey is the key the instance was submitted with, if any.
	IdempotencyKey string `json:"idempotency_key,omitempty"`

	NextMethod string         `json:"next_method,omitempty"`
	NextKwargs map[string]any `json:"next_kwargs,omitempty"`
	Trigger    *Trigger       `json:"trigger,omitempty"`

	// Dispatch counts the activities published for this instance; the
	// current activity's id is ActivityID = "<id>.<dispatch>".
	Dispatch   int    `json:"dispatch"`
	ActivityID string `json:"activity_id,omitempty"`

	Hostname string `json:"hostname,omitempty"`
	PID      int    `json:"pid,omitempty"`
	WorkerID string `json:"worker_id,omitempty"`

	QueuedAt    *time.Time `json:"queued_at,omitempty"`
	StartDate   *time.Time `json:"start_date,omitempty"`
	EndDate     *time.Time `json:"end_date,omitempty"`
	HeartbeatAt *time.Time `json:"heartbeat_at,omitempty"`
	RetryAt     *time.Time `json:"retry_at,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
	// RescheduleCount counts the reschedules of the current try
	// (up_for_reschedule → queued keeps the try); FirstRescheduleAt is the
	// start of the try's first rescheduled run (a reschedule-mode sensor's
	// timeout counts from it).
	RescheduleCount   int        `json:"reschedule_count,omitempty"`
	FirstRescheduleAt *time.Time `json:"first_reschedule_at,omitempty"`
	// RunTime is how long the current try ran before its latest start:
	// the running time before each deferral, for execution_timeout, which
	// counts running time only (not the waits on triggers).
	RunTime Duration `json:"run_time,omitempty"`

	// Tries holds every try so far, the current one last.
	Tries []Try `json:"tries,omitempty"`
}

// NewTaskInstance makes the queued record for a spec that had its defaults
// applied and was validated.
func NewTaskInstance(id string, s TaskSpec, now time.Time) *TaskInstance {
	mi := -1
	if s.MapIndex != nil {
		mi = *s.MapIndex
	}
	now = now.UTC()
	ti := &TaskInstance{
		ID: id, DagID: s.DagID, TaskID: s.TaskID, RunID: s.RunID, MapIndex: mi, Queue: s.Queue,
		State: StateQueued, TryNumber: 1, MaxTries: s.Retries + 1,
		Entrypoint: s.Entrypoint, Params: s.Params, ExecutionTimeout: s.ExecutionTimeout,
		Retry: s.RetryPolicy, Callbacks: s.Callbacks,
		Pool: s.Pool, PoolSlots: s.PoolSlots, PriorityWeight: 1, MaxActiveTisPerDag: s.MaxActiveTisPerDag,
		QueuedAt: &now, UpdatedAt: now,
		Tries: []Try{{TryNumber: 1, State: StateQueued}},
	}
	if s.PriorityWeight != nil {
		ti.PriorityWeight = *s.PriorityWeight
	}
	return ti
}

// PoolName is the pool the instance takes slots of: default_pool when it
// names none.
func (ti *TaskInstance) PoolName() string {
	if ti.Pool == "" {
		return DefaultPool
	}
	return ti.Pool
}

// Slots is how many slots of its pool the instance takes (at least 1).
func (ti *TaskInstance) Slots() int { return max(ti.PoolSlots, 1) }

// Key returns the instance's identity for its current try.
func (ti *TaskInstance) Key() TI {
	return TI{ID: ti.ID, DagID: ti.DagID, TaskID: ti.TaskID, RunID: ti.RunID, MapIndex: ti.MapIndex, TryNumber: ti.TryNumber}
}

// NextActivityID advances Dispatch and returns the new current activity id.
func (ti *TaskInstance) NextActivityID() string {
	ti.Dispatch++
	ti.ActivityID = fmt.Sprintf("%s.%d", ti.ID, ti.Dispatch)
	return ti.ActivityID
}

// CanRetry reports whether a failed try may be followed by another.
func (ti *TaskInstance) CanRetry() bool { return ti.TryNumber < ti.MaxTries }

// SetState moves the record to state to, checked against the graph, and
// keeps the current try's entry in Tries in step. Starting a new try
// (up_for_retry/failed/cancelled → queued) is NewTry's job.
func (ti *TaskInstance) SetState(to State, reason string, now time.Time) error {
	if err := CheckTransition(ti.State, to); err != nil {
		return err
	}
	now = now.UTC()
	ti.State = to
	ti.UpdatedAt = now
	if reason != "" || to == StateRunning || to == StateQueued {
		ti.Reason = reason
	}
	cur := ti.currentTry()
	cur.State = to
	if reason != "" {
		cur.Reason = reason
	}
	switch to {
	case StateRunning:
		ti.StartDate, ti.EndDate = &now, nil
		ti.HeartbeatAt = &now
		cur.StartDate, cur.Hostname, cur.WorkerID = &now, ti.Hostname, ti.WorkerID
	case StateQueued:
		ti.QueuedAt = &now
	case StateDeferred:
		// waiting on a trigger is not a finished try
	default:
		if to.Terminal() || to == StateUpForRetry || to == StateUpForReschedule {
			ti.EndDate = &now
			cur.EndDate = &now
		}
	}
	return nil
}

// NewTry moves a finished try back to queued as try TryNumber+1.
func (ti *TaskInstance) NewTry(now time.Time) error {
	if err := CheckTransition(ti.State, StateQueued); err != nil {
		return err
	}
	if ti.State == StateDeferred {
		return &TransitionError{From: ti.State, To: StateQueued} // a resume keeps its try: use SetState
	}
	ti.TryNumber++
	if ti.TryNumber > ti.MaxTries {
		ti.MaxTries = ti.TryNumber // an operator's retry of an exhausted task
	}
	ti.Tries = append(ti.Tries, Try{TryNumber: ti.TryNumber, State: StateQueued})
	ti.StartDate, ti.EndDate, ti.HeartbeatAt, ti.RetryAt = nil, nil, nil, nil
	ti.Hostname, ti.PID, ti.WorkerID = "", 0, ""
	ti.NextMethod, ti.NextKwargs, ti.Trigger = "", nil, nil
	ti.RunTime = 0
	ti.RescheduleCount, ti.FirstRescheduleAt = 0, nil
	return ti.SetState(StateQueued, "", now)
}

// Reschedule moves an up_for_reschedule try back to queued: the same try
// runs again (Airflow's reschedule-mode sensors: the try number does not
// grow).
func (ti *TaskInstance) Reschedule(now time.Time) error {
	if ti.State != StateUpForReschedule {
		return &TransitionError{From: ti.State, To: StateQueued}
	}
	ti.StartDate, ti.EndDate, ti.HeartbeatAt, ti.RetryAt = nil, nil, nil, nil
	ti.Hostname, ti.PID, ti.WorkerID = "", 0, ""
	return ti.SetState(StateQueued, "", now)
}

func (ti *TaskInstance) currentTry() *Try {
	if len(ti.Tries) == 0 || ti.Tries[len(ti.Tries)-1].TryNumber != ti.TryNumber {
		ti.Tries = append(ti.Tries, Try{TryNumber: ti.TryNumber, State: ti.State})
	}
	return &ti.Tries[len(ti.Tries)-1]
}

// MarshalRecord encodes ti for the KV store.
func (ti *TaskInstance) MarshalRecord() ([]byte, error) { return json.Marshal(ti) }

// UnmarshalRecord decodes a stored record.
func UnmarshalRecord(b []byte) (*TaskInstance, error) {
	var ti TaskInstance
	if err := json.Unmarshal(b, &ti); err != nil {
		return nil, fmt.Errorf("decode task instance: %w", err)
	}
	return &ti, nil
}

// Connection is a stored connection (Airflow's shape).
type Connection struct {
	ConnID   string         `json:"conn_id" yaml:"conn_id"`
	ConnType string         `json:"conn_type" yaml:"conn_type"`
	Host     string         `json:"host,omitempty" yaml:"host,omitempty"`
	Schema   string         `json:"schema,omitempty" yaml:"schema,omitempty"`
	Login    string         `json:"login,omitempty" yaml:"login,omitempty"`
	Password string         `json:"password,omitempty" yaml:"password,omitempty"`
	Port     int            `json:"port,omitempty" yaml:"port,omitempty"`
	Extra    map[string]any `json:"extra,omitempty" yaml:"extra,omitempty"`
}

// sensitiveNames are the parts of a name that make a variable, or a field
// of a connection's extra, a secret (Airflow's sensitive field names).
var sensitiveNames = []string{"access_token", "api_key", "apikey", "authorization", "passphrase",
	"passwd", "password", "private_key", "secret", "token", "keyfile_dict", "service_account"}

// SensitiveName reports whether a variable or an extra field of this name
// holds a secret: its lower-cased name contains password, secret, token,
// api_key, private_key, … as Airflow decides which values to mask.
func SensitiveName(name string) bool {
	name = strings.ToLower(name)
	for _, s := range sensitiveNames {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// Redacted returns c with its password and the values of its sensitive
// extra fields (see SensitiveName), at any depth, replaced by "***".
func (c Connection) Redacted() Connection {
	if c.Password != "" {
		c.Password = "***"
	}
	if c.Extra != nil {
		c.Extra, _ = redactExtra("", c.Extra).(map[string]any)
	}
	return c
}

// redactExtra copies v with the values under sensitive names redacted.
func redactExtra(name string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			child := k
			if SensitiveName(name) {
				child = name // everything under a secret is secret
			}
			out[k] = redactExtra(child, e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactExtra(name, e)
		}
		return out
	case nil:
		return nil
	}
	if SensitiveName(name) {
		return "***"
	}
	return v
}

// Variable is a stored variable.
type Variable struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
}

// Clone returns a deep copy of ti that shares no memory with it (a record
// changed in place, e.g. by the executor's compare-and-set, leaves the
// cached one alone), as a decode of ti.MarshalRecord() would, without the
// JSON round trip. TestCloneSharesNothing walks every field, so a field
// added to the record without a copy here fails it.
func (ti *TaskInstance) Clone() *TaskInstance {
	c := *ti
	c.Entrypoint = ti.Entrypoint.clone()
	c.Params = cloneJSONMap(ti.Params)
	c.Callbacks = Callbacks{OnSuccess: ti.Callbacks.OnSuccess.clone(), OnFailure: ti.Callbacks.OnFailure.clone(),
		OnRetry: ti.Callbacks.OnRetry.clone()}
	if ti.DagRun != nil {
		d := *ti.DagRun
		d.Conf = cloneJSONMap(d.Conf)
		c.DagRun = &d
	}
	c.NextKwargs = cloneJSONMap(ti.NextKwargs)
	if ti.Trigger != nil {
		t := *ti.Trigger
		t.Kwargs = cloneJSONMap(t.Kwargs)
		c.Trigger = &t
	}
	c.QueuedAt, c.StartDate, c.EndDate = cloneTime(ti.QueuedAt), cloneTime(ti.StartDate), cloneTime(ti.EndDate)
	c.HeartbeatAt, c.RetryAt = cloneTime(ti.HeartbeatAt), cloneTime(ti.RetryAt)
	c.FirstRescheduleAt = cloneTime(ti.FirstRescheduleAt)
	if ti.Tries != nil {
		c.Tries = make([]Try, len(ti.Tries))
		for i, t := range ti.Tries {
			t.StartDate, t.EndDate = cloneTime(t.StartDate), cloneTime(t.EndDate)
			c.Tries[i] = t
		}
	}
	return &c
}

func (e Entrypoint) clone() Entrypoint {
	if e.Command != nil {
		e.Command = append([]string(nil), e.Command...)
	}
	if e.Env != nil {
		env := make(map[string]string, len(e.Env))
		for k, v := range e.Env {
			env[k] = v
		}
		e.Env = env
	}
	return e
}

func (cb *Callback) clone() *Callback {
	if cb == nil {
		return nil
	}
	c := *cb
	c.Entrypoint = cb.Entrypoint.clone()
	return &c
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// cloneJSONMap deep-copies a decoded JSON object (maps, slices, scalars).
func cloneJSONMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = cloneJSON(v)
	}
	return c
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneJSONMap(x)
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = cloneJSON(e)
		}
		return c
	}
	return v
}
