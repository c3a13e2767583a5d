package protocol

// Message type names as they appear in the "type" field of a message map.
// They are Airflow's Task SDK names, so its Go and Java SDK shapes carry over.
const (
	TypeStartupDetails   = "StartupDetails"
	TypeConnectionResult = "ConnectionResult"
	TypeVariableResult   = "VariableResult"
	TypeXComResult       = "XComResult"
	TypeOKResponse       = "OKResponse"
	TypeErrorResponse    = "ErrorResponse"
	TypeGetConnection    = "GetConnection"
	TypeGetVariable      = "GetVariable"
	TypePutVariable      = "PutVariable"
	TypeGetXCom          = "GetXCom"
	TypeSetXCom          = "SetXCom"
	TypeDeleteXCom       = "DeleteXCom"
	TypeDeferTask        = "DeferTask"
	TypeRetryTask        = "RetryTask"
	TypeSucceedTask      = "SucceedTask"
	TypeTaskState        = "TaskState"
	TypeMaskSecret       = "MaskSecret"
)

// Message is one protocol message. Type returns the value of its "type" field.
type Message interface {
	MessageType() string
}

// TaskInstance identifies the task try a process runs.
type TaskInstance struct {
	ID        string `json:"id" msgpack:"id"`
	DagID     string `json:"dag_id" msgpack:"dag_id"`
	TaskID    string `json:"task_id" msgpack:"task_id"`
	RunID     string `json:"run_id" msgpack:"run_id"`
	MapIndex  int    `json:"map_index" msgpack:"map_index"`
	TryNumber int    `json:"try_number" msgpack:"try_number"`
}

// RunContext is what the executor tells a task about its run when it starts.
type RunContext struct {
	MaxTries   int            `json:"max_tries" msgpack:"max_tries"`
	Queue      string         `json:"queue" msgpack:"queue"`
	Entrypoint string         `json:"entrypoint" msgpack:"entrypoint"` // the task the runtime runs (SDK runtimes)
	Params     map[string]any `json:"params,omitempty" msgpack:"params,omitempty"`
	// DagRun is the DAG run the task instance belongs to (Airflow's
	// ti_context.dag_run); nil for a task submitted alone.
	DagRun *DagRun `json:"dag_run,omitempty" msgpack:"dag_run,omitempty"`
}

// DagRun is a task's DAG run. LogicalDate is RFC 3339.
type DagRun struct {
	DagID       string         `json:"dag_id" msgpack:"dag_id"`
	RunID       string         `json:"run_id" msgpack:"run_id"`
	LogicalDate string         `json:"logical_date" msgpack:"logical_date"`
	RunType     string         `json:"run_type,omitempty" msgpack:"run_type,omitempty"`
	Conf        map[string]any `json:"conf,omitempty" msgpack:"conf,omitempty"`
}

// StartupDetails is the first frame the worker sends, with id 0.
// Times are RFC 3339 strings so JSON runtimes never see msgpack extension types.
type StartupDetails struct {
	Type       string         `json:"type" msgpack:"type"`
	TI         TaskInstance   `json:"ti" msgpack:"ti"`
	Context    RunContext     `json:"ti_context" msgpack:"ti_context"`
	NextMethod string         `json:"next_method,omitempty" msgpack:"next_method,omitempty"`
	NextKwargs map[string]any `json:"next_kwargs,omitempty" msgpack:"next_kwargs,omitempty"`
	StartDate  string         `json:"start_date" msgpack:"start_date"`
}

// ConnectionResult answers GetConnection.
type ConnectionResult struct {
	Type     string         `json:"type" msgpack:"type"`
	ConnID   string         `json:"conn_id" msgpack:"conn_id"`
	ConnType string         `json:"conn_type" msgpack:"conn_type"`
	Host     string         `json:"host,omitempty" msgpack:"host,omitempty"`
	Schema   string         `json:"schema,omitempty" msgpack:"schema,omitempty"`
	Login    string         `json:"login,omitempty" msgpack:"login,omitempty"`
	Password string         `json:"password,omitempty" msgpack:"password,omitempty"`
	Port     int            `json:"port,omitempty" msgpack:"port,omitempty"`
	Extra    map[string]any `json:"extra,omitempty" msgpack:"extra,omitempty"`
}

// VariableResult answers GetVariable.
type VariableResult struct {
	Type  string `json:"type" msgpack:"type"`
	Key   string `json:"key" msgpack:"key"`
	Value string `json:"value" msgpack:"value"`
}

// XComResult answers GetXCom. Value is nil when the XCom does not exist.
type XComResult struct {
	Type  string `json:"type" msgpack:"type"`
	Key   string `json:"key" msgpack:"key"`
	Value any    `json:"value" msgpack:"value"`
}

// OKResponse answers a request that returns nothing.
type OKResponse struct {
	Type string `json:"type" msgpack:"type"`
}

// ErrorResponse carries a failed request's error. Error is a short machine
// name (for example "not_found", "api_error", "bad_request"); Detail explains.
type ErrorResponse struct {
	Type   string         `json:"type" msgpack:"type"`
	Error  string         `json:"error" msgpack:"error"`
	Detail map[string]any `json:"detail,omitempty" msgpack:"detail,omitempty"`
}

// GetConnection asks for a connection by id.
type GetConnection struct {
	Type   string `json:"type" msgpack:"type"`
	ConnID string `json:"conn_id" msgpack:"conn_id"`
}

// GetVariable asks for a variable by key.
type GetVariable struct {
	Type string `json:"type" msgpack:"type"`
	Key  string `json:"key" msgpack:"key"`
}

// PutVariable sets a variable.
type PutVariable struct {
	Type        string `json:"type" msgpack:"type"`
	Key         string `json:"key" msgpack:"key"`
	Value       string `json:"value" msgpack:"value"`
	Description string `json:"description,omitempty" msgpack:"description,omitempty"`
}

// GetXCom reads an XCom. Empty DagID/RunID mean the task's own.
type GetXCom struct {
	Type     string `json:"type" msgpack:"type"`
	Key      string `json:"key" msgpack:"key"`
	DagID    string `json:"dag_id" msgpack:"dag_id"`
	RunID    string `json:"run_id" msgpack:"run_id"`
	TaskID   string `json:"task_id" msgpack:"task_id"`
	MapIndex *int   `json:"map_index,omitempty" msgpack:"map_index,omitempty"`
}

// SetXCom writes an XCom for the task itself (DagID/RunID/TaskID are the task's own).
type SetXCom struct {
	Type     string `json:"type" msgpack:"type"`
	Key      string `json:"key" msgpack:"key"`
	Value    any    `json:"value" msgpack:"value"`
	DagID    string `json:"dag_id" msgpack:"dag_id"`
	RunID    string `json:"run_id" msgpack:"run_id"`
	TaskID   string `json:"task_id" msgpack:"task_id"`
	MapIndex *int   `json:"map_index,omitempty" msgpack:"map_index,omitempty"`
}

// DeleteXCom removes an XCom of the task itself.
type DeleteXCom struct {
	Type     string `json:"type" msgpack:"type"`
	Key      string `json:"key" msgpack:"key"`
	DagID    string `json:"dag_id" msgpack:"dag_id"`
	RunID    string `json:"run_id" msgpack:"run_id"`
	TaskID   string `json:"task_id" msgpack:"task_id"`
	MapIndex *int   `json:"map_index,omitempty" msgpack:"map_index,omitempty"`
}

// DeferTask suspends the task until its trigger fires. TriggerTimeout is a
// Go duration string ("90s") or empty for none.
type DeferTask struct {
	Type           string         `json:"type" msgpack:"type"`
	Classpath      string         `json:"classpath" msgpack:"classpath"`
	TriggerKwargs  map[string]any `json:"trigger_kwargs,omitempty" msgpack:"trigger_kwargs,omitempty"`
	TriggerTimeout string         `json:"trigger_timeout,omitempty" msgpack:"trigger_timeout,omitempty"`
	NextMethod     string         `json:"next_method" msgpack:"next_method"`
	NextKwargs     map[string]any `json:"next_kwargs,omitempty" msgpack:"next_kwargs,omitempty"`
}

// RetryTask ends the try asking for a retry.
type RetryTask struct {
	Type    string `json:"type" msgpack:"type"`
	EndDate string `json:"end_date,omitempty" msgpack:"end_date,omitempty"`
	Reason  string `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// SucceedTask ends the try successfully.
type SucceedTask struct {
	Type    string `json:"type" msgpack:"type"`
	EndDate string `json:"end_date,omitempty" msgpack:"end_date,omitempty"`
}

// TaskState ends the try in a terminal state: failed, skipped or removed.
type TaskState struct {
	Type    string `json:"type" msgpack:"type"`
	State   string `json:"state" msgpack:"state"`
	EndDate string `json:"end_date,omitempty" msgpack:"end_date,omitempty"`
	Reason  string `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// MaskSecret asks the worker to mask a value in the task's logs.
type MaskSecret struct {
	Type  string `json:"type" msgpack:"type"`
	Value string `json:"value" msgpack:"value"`
	Name  string `json:"name,omitempty" msgpack:"name,omitempty"`
}

func (StartupDetails) MessageType() string   { return TypeStartupDetails }
func (ConnectionResult) MessageType() string { return TypeConnectionResult }
func (VariableResult) MessageType() string   { return TypeVariableResult }
func (XComResult) MessageType() string       { return TypeXComResult }
func (OKResponse) MessageType() string       { return TypeOKResponse }
func (ErrorResponse) MessageType() string    { return TypeErrorResponse }
func (GetConnection) MessageType() string    { return TypeGetConnection }
func (GetVariable) MessageType() string      { return TypeGetVariable }
func (PutVariable) MessageType() string      { return TypePutVariable }
func (GetXCom) MessageType() string          { return TypeGetXCom }
func (SetXCom) MessageType() string          { return TypeSetXCom }
func (DeleteXCom) MessageType() string       { return TypeDeleteXCom }
func (DeferTask) MessageType() string        { return TypeDeferTask }
func (RetryTask) MessageType() string        { return TypeRetryTask }
func (SucceedTask) MessageType() string      { return TypeSucceedTask }
func (TaskState) MessageType() string        { return TypeTaskState }
func (MaskSecret) MessageType() string       { return TypeMaskSecret }
