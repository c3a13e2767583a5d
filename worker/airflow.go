package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/protocol"
)

// The airflow runtime: a queue whose runtime is "airflow" runs each try
// with Airflow's own task runner (airflow.sdk.execution_time.task_runner
// of the pinned apache-airflow-task-sdk), started through the Python SDK's
// taskwire.airflow_runtime shim, which dials the comm address, puts the
// socket on the runner's fd 0 (where Airflow's supervisor puts its end of
// a socketpair) and sends the runner's JSON logs to the logs address. The
// worker then plays Airflow's supervisor on that socket, in Airflow's
// dialect (protocol/airflow.go): StartupDetails as the runner requires it,
// and an answer for every request of the pinned version, through the
// Execution API, stored in the try's log, or Airflow's error response
// saying what taskwire cannot do; never a protocol error for a valid
// message.

// airflowBundle is the bundle the runner loads DAG files from: Airflow's
// default LocalDagBundle over [core] dags_folder, which the worker sets to
// the runtime's DagsFolder.
const airflowBundle = "dags-folder"

// dagVersionNamespace derives a DAG's dag_version_id (a UUID the runner
// requires) from its DAG id and version.
var dagVersionNamespace = uuid.MustParse("6f1d3c2e-8a4b-4f5e-9c7d-2b1a0e9f8d7c")

// airflowEnv is the environment the airflow runtime adds.
func (r *AirflowRuntime) env() []string {
	return []string{"AIRFLOW__CORE__DAGS_FOLDER=" + r.DagsFolder}
}

// dagRelPath is the DAG file of dagID relative to the DAG folder: D.py
// when it exists, else "." (the runner parses the whole folder).
func (r *AirflowRuntime) dagRelPath(dagID string) string {
	name := dagID + ".py"
	if !strings.ContainsAny(dagID, `/\`) {
		if st, err := os.Stat(filepath.Join(r.DagsFolder, name)); err == nil && st.Mode().IsRegular() {
			return name
		}
	}
	return "."
}

// airflowRunType is Airflow's DagRunType of a run: its run_type, else the
// prefix of its run id ("scheduled__…"), else manual.
func airflowRunType(runType, runID string) string {
	valid := []string{"backfill", "scheduled", "manual", "operator_triggered", "asset_triggered", "asset_materialization"}
	for _, t := range valid {
		if runType == t {
			return t
		}
	}
	for _, t := range valid {
		if strings.HasPrefix(runID, t+"__") {
			return t
		}
	}
	return "manual"
}

// airflowStartup builds the StartupDetails body Airflow's runner requires,
// with a dag_run made from the taskwire run.
func (j *job) airflowStartup() protocol.Map {
	sd := j.startup
	start, err := time.Parse(time.RFC3339Nano, sd.StartDate)
	if err != nil {
		start = time.Now()
	}
	start = start.UTC()
	runAfter, logical := start, any(nil)
	var conf any
	version := 0
	runType := ""
	if j.dagRun != nil {
		if !j.dagRun.LogicalDate.IsZero() {
			runAfter = j.dagRun.LogicalDate.UTC()
			logical = runAfter
		}
		if j.dagRun.Conf != nil {
			conf = j.dagRun.Conf
		}
		version, runType = j.dagRun.DagVersion, j.dagRun.RunType
	}
	var nextMethod, nextKwargs any
	if sd.NextMethod != "" {
		nextMethod = sd.NextMethod
		nextKwargs = map[string]any{}
		if sd.NextKwargs != nil {
			nextKwargs = sd.NextKwargs
		}
	}
	queue := any(nil)
	if sd.Context.Queue != "" {
		queue = sd.Context.Queue
	}
	ti := protocol.Map{
		{Key: "id", Value: sd.TI.ID},
		{Key: "task_id", Value: sd.TI.TaskID},
		{Key: "dag_id", Value: sd.TI.DagID},
		{Key: "run_id", Value: sd.TI.RunID},
		{Key: "try_number", Value: sd.TI.TryNumber},
		{Key: "dag_version_id", Value: uuid.NewSHA1(dagVersionNamespace, fmt.Appendf(nil, "%s\x00%d", sd.TI.DagID, version)).String()},
		{Key: "map_index", Value: sd.TI.MapIndex},
		{Key: "hostname", Value: j.w.cfg.Hostname},
		{Key: "context_carrier", Value: nil},
		{Key: "queue", Value: queue},
	}
	dagRun := protocol.Map{
		{Key: "dag_id", Value: sd.TI.DagID},
		{Key: "run_id", Value: sd.TI.RunID},
		{Key: "logical_date", Value: logical},
		{Key: "data_interval_start", Value: logical},
		{Key: "data_interval_end", Value: logical},
		{Key: "run_after", Value: runAfter},
		{Key: "start_date", Value: start},
		{Key: "end_date", Value: nil},
		{Key: "clear_number", Value: 0},
		{Key: "run_type", Value: airflowRunType(runType, sd.TI.RunID)},
		{Key: "state", Value: "running"},
		{Key: "conf", Value: conf},
		{Key: "triggering_user_name", Value: nil},
		{Key: "consumed_asset_events", Value: []any{}},
		{Key: "partition_key", Value: nil},
		{Key: "partition_date", Value: nil},
		{Key: "note", Value: nil},
		{Key: "team_name", Value: nil},
	}
	tiContext := protocol.Map{
		{Key: "dag_run", Value: dagRun},
		{Key: "task_reschedule_count", Value: j.rescheduleCount},
		{Key: "max_tries", Value: sd.Context.MaxTries},
		{Key: "variables", Value: nil},
		{Key: "connections", Value: nil},
		{Key: "next_method", Value: nextMethod},
		{Key: "next_kwargs", Value: nextKwargs},
		{Key: "xcom_keys_to_clear", Value: nil},
		{Key: "should_retry", Value: j.shouldRetry},
		{Key: "start_date", Value: start},
	}
	return protocol.Map{
		{Key: "ti", Value: ti},
		{Key: "dag_rel_path", Value: j.rt.Airflow.dagRelPath(sd.TI.DagID)},
		{Key: "bundle_info", Value: protocol.Map{{Key: "name", Value: airflowBundle}, {Key: "version", Value: nil}}},
		{Key: "start_date", Value: start},
		{Key: "ti_context", Value: tiContext},
		{Key: "sentry_integration", Value: ""},
		{Key: "type", Value: "StartupDetails"},
	}
}

// airflowLoop is the serveLoop of Airflow's dialect.
func (j *job) airflowLoop(ctx context.Context, c net.Conn, final func(outcome) bool) error {
	send := func(resp protocol.AirflowResponse) error {
		b, err := protocol.EncodeAirflowResponse(resp)
		if err != nil {
			return fmt.Errorf("encode response %d: %w", resp.ID, err)
		}
		return protocol.WriteFrame(c, b)
	}
	if err := send(protocol.AirflowResponse{ID: 0, Body: j.airflowStartup()}); err != nil {
		if endOfStream(err) {
			return nil
		}
		return fmt.Errorf("send StartupDetails: %w", err)
	}
	for {
		body, err := protocol.ReadFrame(c, protocol.MaxFrameSizeDefault)
		if err != nil {
			if endOfStream(err) {
				return nil
			}
			return err
		}
		req, err := protocol.DecodeAirflowRequest(body)
		if err != nil {
			return err
		}
		resp, term := j.answerAirflow(ctx, req.Body)
		resp.ID = req.ID
		ended := false
		if term != nil {
			if final(*term) {
				ended = true
			} else {
				resp = protocol.AirflowResponse{ID: req.ID, Error: airflowError(errGeneric,
					map[string]any{"message": "the task already sent its final state"})}
			}
		}
		if err := send(resp); err != nil {
			if !endOfStream(err) {
				j.log.Debug("answer airflow runtime", "err", err)
			}
			if ended {
				return nil
			}
		}
	}
}

// Airflow's ErrorType values (airflow.sdk.exceptions.ErrorType).
const (
	errConnectionNotFound = "CONNECTION_NOT_FOUND"
	errVariableNotFound   = "VARIABLE_NOT_FOUND"
	errPermissionDenied   = "PERMISSION_DENIED"
	errGeneric            = "GENERIC_ERROR"
	errAPIServer          = "API_SERVER_ERROR"
)

// airflowError is an ErrorResponse body: {error, detail, type}.
func airflowError(kind string, detail map[string]any) protocol.Map {
	return protocol.Map{{Key: "error", Value: kind}, {Key: "detail", Value: detail}, {Key: "type", Value: "ErrorResponse"}}
}

// apiFailure is the answer to a request whose Execution API call failed, as
// Airflow's supervisor sends a ServerResponseError: the error slot.
func apiFailure(err error) protocol.AirflowResponse {
	status, kind := execution.StatusOf(err), errAPIServer
	if status == 403 {
		kind = errPermissionDenied
	}
	return protocol.AirflowResponse{Error: airflowError(kind, map[string]any{"status_code": status, "message": err.Error()})}
}

// unsupported answers a request taskwire cannot honour.
func unsupported(typ, why string) protocol.AirflowResponse {
	return protocol.AirflowResponse{Error: airflowError(errAPIServer, map[string]any{
		"status_code": 501, "message": fmt.Sprintf("taskwire does not support %s: %s", typ, why)})}
}

func okBody() protocol.AirflowResponse {
	return protocol.AirflowResponse{Body: protocol.Map{{Key: "ok", Value: true}, {Key: "type", Value: "OKResponse"}}}
}

// maskAirflow registers a MaskSecret value as Airflow's masker does: a
// string is masked unless a name says it is not secret; in a map, values
// under secret-sounding keys are.
func (j *job) maskAirflow(v any, name string) {
	switch x := protocol.Plain(v).(type) {
	case string:
		if name == "" || activity.SensitiveName(name) {
			j.tl.addMask(x)
		}
	case map[string]any:
		j.tl.addNamedMask(name, x)
	case []any:
		for _, e := range x {
			j.maskAirflow(e, name)
		}
	}
}

// airflowReason is m[key] when it is a non-empty string, else fallback.
func airflowReason(m protocol.Map, key, fallback string) string {
	if s := m.Str(key); s != "" {
		return s
	}
	return fallback
}

// answerAirflow answers one request of Airflow's runner. A terminal
// message also returns the try's outcome.
func (j *job) answerAirflow(ctx context.Context, m protocol.Map) (protocol.AirflowResponse, *outcome) {
	typ := m.Type()
	switch typ {
	case "SucceedTask":
		return protocol.AirflowResponse{}, &outcome{state: activity.StateSuccess}
	case "RetryTask":
		return protocol.AirflowResponse{}, &outcome{state: activity.StateUpForRetry, reason: airflowReason(m, "retry_reason", "task failed; Airflow's runner asked for a retry")}
	case "TaskState":
		switch s := activity.State(m.Str("state")); s {
		case activity.StateFailed, activity.StateSkipped, activity.StateRemoved:
			reason := ""
			if s == activity.StateFailed {
				reason = "task failed (see its log)"
			}
			return protocol.AirflowResponse{}, &outcome{state: s, reason: reason}
		}
		return protocol.AirflowResponse{Error: airflowError(errGeneric, map[string]any{
			"message": fmt.Sprintf("TaskState state %q: want failed, skipped or removed", m.Str("state"))})}, nil
	case "DeferTask":
		out, err := j.airflowDefer(m)
		if err != nil {
			return protocol.AirflowResponse{Error: airflowError(errGeneric, map[string]any{"message": err.Error()})}, nil
		}
		j.tl.worker("info", fmt.Sprintf("deferred on trigger %s; will resume at %s", out.trigger.Classpath, out.nextMethod))
		return protocol.AirflowResponse{}, &out
	case "MaskSecret":
		v, _ := m.Get("value")
		j.maskAirflow(v, m.Str("name"))
		return protocol.AirflowResponse{}, nil
	case "SetRenderedFields":
		// Stored with the try's log (masked like every line): taskwire has
		// no rendered-fields table.
		v, _ := m.Get("rendered_fields")
		j.tl.emit(map[string]any{"timestamp": now(), "level": "info", "logger": "taskwire.worker",
			"event": "rendered fields", "rendered_fields": protocol.Plain(v)})
		return protocol.AirflowResponse{}, nil
	case "SetRenderedMapIndex":
		j.tl.worker("info", "rendered map index: "+m.Str("rendered_map_index"))
		return protocol.AirflowResponse{}, nil
	case "ValidateInletsAndOutlets":
		// taskwire has no assets, so none of the task's is inactive.
		return protocol.AirflowResponse{Body: protocol.Map{{Key: "inactive_assets", Value: []any{}}, {Key: "type", Value: "InactiveAssetsResult"}}}, nil
	case "GetDagRunState":
		if m.Str("dag_id") == j.ti.DagID && m.Str("run_id") == j.ti.RunID {
			return protocol.AirflowResponse{Body: protocol.Map{{Key: "state", Value: "running"}, {Key: "type", Value: "DagRunStateResult"}}}, nil
		}
		return unsupported(typ, "a task may ask only for its own DAG run's state"), nil
	case "RescheduleTask":
		v, _ := m.Get("reschedule_date")
		at, ok := protocol.ParseAirflowTime(v)
		if !ok {
			return protocol.AirflowResponse{Error: airflowError(errGeneric, map[string]any{"message": "RescheduleTask needs a reschedule_date"})}, nil
		}
		at = at.UTC()
		j.tl.worker("info", "rescheduled: the same try runs again at "+at.Format(time.RFC3339Nano))
		return protocol.AirflowResponse{}, &outcome{state: activity.StateUpForReschedule, rescheduleAt: &at}
	case "GetTaskRescheduleStartDate":
		var start any
		if j.firstRescheduleAt != nil {
			start = j.firstRescheduleAt.UTC()
		}
		return protocol.AirflowResponse{Body: protocol.Map{{Key: "start_date", Value: start}, {Key: "type", Value: "TaskRescheduleStartDate"}}}, nil
	case "ResendLoggingFD":
		return unsupported(typ, "the runtime sends its logs to the logs address; there is no file descriptor to pass"), nil
	}
	if j.tc == nil {
		return protocol.AirflowResponse{Error: airflowError(errPermissionDenied, map[string]any{"message": "callbacks have no Execution API access"})}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	tc, ti := j.tc, j.ti
	switch typ {
	case "SkipDownstreamTasks":
		// tasks: task ids, or [task_id, map_index] pairs (map index -1:
		// the whole task; else that instance only).
		v, _ := m.Get("tasks")
		list, _ := v.([]any)
		var tasks []execution.SkipTask
		for _, e := range list {
			st := execution.SkipTask{MapIndex: -1}
			if p, ok := e.([]any); ok && len(p) == 2 {
				e = p[0]
				switch n := p[1].(type) {
				case int64:
					st.MapIndex = int(n)
				case int:
					st.MapIndex = n
				default:
					return protocol.AirflowResponse{Error: airflowError(errGeneric, map[string]any{
						"message": fmt.Sprintf("SkipDownstreamTasks: map index %v is not an integer", protocol.Plain(p[1]))})}, nil
				}
			}
			if s, ok := e.(string); ok && !slices.Contains(tasks, execution.SkipTask{TaskID: s, MapIndex: st.MapIndex}) {
				st.TaskID = s
				tasks = append(tasks, st)
			}
		}
		if j.dagRun == nil {
			j.tl.worker("info", fmt.Sprintf("skip downstream %v: the task is not part of a DAG run, nothing to skip", tasks))
			return protocol.AirflowResponse{}, nil
		}
		if err := tc.SkipDownstream(rctx, tasks); err != nil {
			return apiFailure(err), nil
		}
		j.tl.worker("info", fmt.Sprintf("skipped downstream tasks %v", tasks))
		return protocol.AirflowResponse{}, nil
	case "GetConnection":
		id := m.Str("conn_id")
		c, err := tc.Connection(rctx, id)
		if errors.Is(err, execution.ErrNotFound) {
			return protocol.AirflowResponse{Body: airflowError(errConnectionNotFound, map[string]any{"conn_id": id})}, nil
		}
		if err != nil {
			return apiFailure(err), nil
		}
		j.tl.addMask(c.Password)
		j.tl.addNamedMask("extra", c.Extra)
		return protocol.AirflowResponse{Body: airflowConnection(c)}, nil
	case "GetVariable":
		key := m.Str("key")
		v, err := tc.Variable(rctx, key)
		if errors.Is(err, execution.ErrNotFound) {
			return protocol.AirflowResponse{Body: airflowError(errVariableNotFound, map[string]any{"key": key})}, nil
		}
		if err != nil {
			return apiFailure(err), nil
		}
		j.tl.addNamedMask(key, v.Value)
		return protocol.AirflowResponse{Body: protocol.Map{{Key: "key", Value: key}, {Key: "value", Value: v.Value}, {Key: "type", Value: "VariableResult"}}}, nil
	case "PutVariable":
		key := m.Str("key")
		if err := tc.PutVariable(rctx, key, execution.VariableBody{Key: key, Value: m.Str("value"), Description: m.Str("description")}); err != nil {
			return apiFailure(err), nil
		}
		return protocol.AirflowResponse{}, nil
	case "DeleteVariable":
		if err := tc.DeleteVariable(rctx, m.Str("key")); err != nil {
			return apiFailure(err), nil
		}
		return okBody(), nil
	case "GetXCom":
		k := execution.XComKey{DagID: m.Str("dag_id"), RunID: m.Str("run_id"), TaskID: m.Str("task_id"), Key: m.Str("key"), MapIndex: -1}
		if n, ok := m.Int("map_index"); ok {
			k.MapIndex = n
		}
		v, err := tc.XCom(rctx, k)
		if err != nil && !errors.Is(err, execution.ErrNotFound) {
			return apiFailure(err), nil
		}
		return protocol.AirflowResponse{Body: protocol.Map{{Key: "key", Value: k.Key}, {Key: "value", Value: v}, {Key: "type", Value: "XComResult"}}}, nil
	case "GetXComCount", "GetXComSequenceItem", "GetXComSequenceSlice":
		// A mapped task's XComs, read whole: the Execution API answers
		// map_index -1 of a mapped task with the list of its values.
		k := execution.XComKey{DagID: m.Str("dag_id"), RunID: m.Str("run_id"), TaskID: m.Str("task_id"), Key: m.Str("key"), MapIndex: -1}
		v, err := tc.XCom(rctx, k)
		if err != nil && !errors.Is(err, execution.ErrNotFound) {
			return apiFailure(err), nil
		}
		list, ok := v.([]any)
		if !ok && err == nil {
			list = []any{v}
		}
		return xcomSequence(typ, m, list), nil
	case "SetXCom", "DeleteXCom":
		k := execution.XComKey{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, Key: m.Str("key"), MapIndex: ti.MapIndex}
		if m.Str("dag_id") != ti.DagID || m.Str("run_id") != ti.RunID || m.Str("task_id") != ti.TaskID {
			return protocol.AirflowResponse{Error: airflowError(errPermissionDenied, map[string]any{
				"status_code": 403, "message": "a task writes only its own XComs"})}, nil
		}
		var err error
		if typ == "SetXCom" {
			v, _ := m.Get("value")
			err = tc.SetXCom(rctx, k, protocol.Plain(v))
		} else {
			err = tc.DeleteXCom(rctx, k)
		}
		if err != nil {
			return apiFailure(err), nil
		}
		return protocol.AirflowResponse{}, nil
	}
	return unsupported(typ, "no such operation in taskwire's Execution API"), nil
}

// xcomSequence answers GetXComCount, GetXComSequenceItem and
// GetXComSequenceSlice from the values of a (mapped) task's XCom.
func xcomSequence(typ string, m protocol.Map, list []any) protocol.AirflowResponse {
	switch typ {
	case "GetXComCount":
		return protocol.AirflowResponse{Body: protocol.Map{{Key: "len", Value: len(list)}, {Key: "type", Value: "XComCountResponse"}}}
	case "GetXComSequenceItem":
		i, _ := m.Int("offset")
		if i < 0 {
			i += len(list)
		}
		if i < 0 || i >= len(list) {
			return protocol.AirflowResponse{Body: airflowError("XCOM_NOT_FOUND", map[string]any{
				"dag_id": m.Str("dag_id"), "run_id": m.Str("run_id"), "task_id": m.Str("task_id"), "key": m.Str("key"), "offset": i})}
		}
		return protocol.AirflowResponse{Body: protocol.Map{{Key: "root", Value: list[i]}, {Key: "type", Value: "XComSequenceIndexResult"}}}
	}
	opt := func(k string) *int {
		if n, ok := m.Int(k); ok {
			return &n
		}
		return nil
	}
	out := []any{}
	for _, i := range pySlice(len(list), opt("start"), opt("stop"), opt("step")) {
		out = append(out, list[i])
	}
	return protocol.AirflowResponse{Body: protocol.Map{{Key: "root", Value: out}, {Key: "type", Value: "XComSequenceSliceResult"}}}
}

// pySlice returns the indexes of Python's seq[start:stop:step] over n items.
func pySlice(n int, start, stop, step *int) []int {
	st := 1
	if step != nil && *step != 0 {
		st = *step
	}
	norm := func(p *int, def, lo, hi int) int {
		if p == nil {
			return def
		}
		v := *p
		if v < 0 {
			v += n
		}
		return min(max(v, lo), hi)
	}
	var idx []int
	if st > 0 {
		for i := norm(start, 0, 0, n); i < norm(stop, n, 0, n); i += st {
			idx = append(idx, i)
		}
	} else {
		for i := norm(start, n-1, -1, n-1); i > norm(stop, -1, -1, n-1); i += st {
			idx = append(idx, i)
		}
	}
	return idx
}

// airflowConnection is c as Airflow's ConnectionResult body.
func airflowConnection(c activity.Connection) protocol.Map {
	return protocol.AirflowConnection(c.ConnID, c.ConnType, c.Host, c.Schema, c.Login, c.Password, c.Port, c.Extra)
}

// airflowDefer turns a DeferTask into the try's deferred outcome.
func (j *job) airflowDefer(m protocol.Map) (outcome, error) {
	classpath, nextMethod := m.Str("classpath"), m.Str("next_method")
	if classpath == "" || nextMethod == "" {
		return outcome{}, errors.New("DeferTask needs classpath and next_method")
	}
	if nextMethod == failMethod {
		return outcome{}, fmt.Errorf("DeferTask next_method %q is reserved", failMethod)
	}
	tv, _ := m.Get("trigger_timeout")
	timeout, err := protocol.ParseAirflowDuration(tv)
	if err != nil || timeout < 0 {
		return outcome{}, fmt.Errorf("DeferTask trigger_timeout %v: want a non-negative timedelta", protocol.Plain(tv))
	}
	var kwargs, nextKwargs map[string]any
	if v, ok := m.Get("trigger_kwargs"); ok && v != nil {
		switch x := protocol.Plain(v).(type) {
		case map[string]any:
			kwargs = x
		case string:
			kwargs = map[string]any{"__serialized__": x}
		default:
			return outcome{}, errors.New("DeferTask trigger_kwargs: want a map")
		}
	}
	if v, ok := m.Get("next_kwargs"); ok && v != nil {
		x, ok := protocol.Plain(v).(map[string]any)
		if !ok {
			return outcome{}, errors.New("DeferTask next_kwargs: want a map")
		}
		nextKwargs = x
	}
	classpath, kwargs, end := airflowTrigger(classpath, kwargs)
	out := deferredOutcome(classpath, kwargs, timeout, nextMethod, nextKwargs)
	out.trigger.EndFromTrigger = end
	return out, nil
}
