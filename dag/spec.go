package dag

import (
	"maps"

	"github.com/taskwire/taskwire/activity"
)

// TaskSpec is what queue_activity is asked for one task instance of run
// r: the task with default_args applied, the DAG's params under the
// task's, and a mapped instance's element under its expand argument.
func (d *DAG) TaskSpec(t *Task, r *Run, in *Instance) activity.TaskSpec {
	a := &d.DefaultArgs
	mi := in.MapIndex
	spec := activity.TaskSpec{
		DagID: d.DagID, TaskID: t.TaskID, RunID: r.RunID, MapIndex: &mi,
		Queue:      first(t.Queue, a.Queue),
		Entrypoint: activity.Entrypoint{Command: t.Command, Task: t.Task},
		Callbacks:  t.Callbacks,
	}
	if len(a.Env)+len(t.Env) > 0 {
		spec.Env = map[string]string{}
		maps.Copy(spec.Env, a.Env)
		maps.Copy(spec.Env, t.Env)
	}
	if len(d.Params)+len(t.Params) > 0 || t.Mapped() {
		spec.Params = map[string]any{}
		maps.Copy(spec.Params, d.Params)
		maps.Copy(spec.Params, t.Params)
		if name, _, ok := t.ExpandArg(); ok && in.MapIndex >= 0 {
			spec.Params[name] = in.Param
		}
	}
	spec.Retries = deref(firstPtr(t.Retries, a.Retries))
	spec.Delay = deref(firstPtr(t.RetryDelay, a.RetryDelay))
	spec.Exponential = deref(firstPtr(t.RetryExponential, a.RetryExponential))
	spec.MaxDelay = deref(firstPtr(t.MaxRetryDelay, a.MaxRetryDelay))
	spec.ExecutionTimeout = deref(firstPtr(t.ExecutionTimeout, a.ExecutionTimeout))
	spec.Pool = first(t.Pool, a.Pool)
	spec.PoolSlots = deref(firstPtr(t.PoolSlots, a.PoolSlots))
	spec.PriorityWeight = firstPtr(t.PriorityWeight, a.PriorityWeight)
	spec.MaxActiveTisPerDag = deref(firstPtr(t.MaxActiveTisPerDag, a.MaxActiveTisPerDag))
	if spec.Callbacks.OnSuccess == nil {
		spec.Callbacks.OnSuccess = a.Callbacks.OnSuccess
	}
	if spec.Callbacks.OnFailure == nil {
		spec.Callbacks.OnFailure = a.Callbacks.OnFailure
	}
	if spec.Callbacks.OnRetry == nil {
		spec.Callbacks.OnRetry = a.Callbacks.OnRetry
	}
	return spec
}

// RunContext is the dag_run a task instance of r carries.
func (r *Run) RunContext() *activity.DagRun {
	return &activity.DagRun{RunID: r.RunID, LogicalDate: r.LogicalDate, RunType: r.RunType, Conf: r.Conf, DagVersion: r.DagVersion}
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func firstPtr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}
