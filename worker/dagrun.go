package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/protocol"
)

// returnValueKey is the XCom key of a task's return value.
const returnValueKey = "return_value"

// dagRunEnv is the environment that tells a command task its DAG run:
// TASKWIRE_DAG_RUN_CONF (the run's conf as a JSON object, {} when none),
// TASKWIRE_LOGICAL_DATE (RFC 3339) and TASKWIRE_RUN_TYPE. A task
// submitted alone gets none of them.
func dagRunEnv(dr *activity.DagRun) []string {
	if dr == nil {
		return nil
	}
	conf := []byte("{}")
	if len(dr.Conf) > 0 {
		if b, err := json.Marshal(dr.Conf); err == nil {
			conf = b
		}
	}
	return []string{
		"TASKWIRE_DAG_RUN_CONF=" + string(conf),
		"TASKWIRE_LOGICAL_DATE=" + dr.LogicalDate.UTC().Format(time.RFC3339Nano),
		"TASKWIRE_RUN_TYPE=" + dr.RunType,
	}
}

// protocolDagRun is the dag_run of StartupDetails' ti_context.
func protocolDagRun(dagID string, dr *activity.DagRun) *protocol.DagRun {
	if dr == nil {
		return nil
	}
	return &protocol.DagRun{DagID: dagID, RunID: dr.RunID, LogicalDate: dr.LogicalDate.UTC().Format(time.RFC3339Nano),
		RunType: dr.RunType, Conf: dr.Conf}
}

// returnValue pushes a successful DAG-run command task's last stdout line
// as its return_value XCom, as Airflow's BashOperator does: decoded as
// JSON when it is JSON, else the string. (Tasks submitted alone skip
// this: their hot path stays one API call shorter.) A push that fails
// makes the try fail for a retry: a downstream would miss the value.
func (j *job) returnValue(ctx context.Context, p *proc, out outcome) outcome {
	if out.state != activity.StateSuccess || j.tc == nil || j.dagRun == nil {
		return out
	}
	last := p.lastOut.Load()
	if last == nil {
		return out
	}
	var v any = *last
	if json.Valid([]byte(*last)) {
		if dv, err := execution.DecodeValue([]byte(*last)); err == nil {
			v = dv
		}
	}
	k := execution.XComKey{DagID: j.ti.DagID, RunID: j.ti.RunID, TaskID: j.ti.TaskID, MapIndex: j.ti.MapIndex, Key: returnValueKey}
	if err := j.tc.SetXCom(ctx, k, v); err != nil {
		return retry("push the return value (last line of stdout) as xcom %s: %v", returnValueKey, err)
	}
	return out
}
