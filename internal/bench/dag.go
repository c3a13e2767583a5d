package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
)

// DagFigures are the DAG-run phases: a fan-out/fan-in and a chain of
// no-op command tasks.
type DagFigures struct {
	// FanTasks tasks in a 1 → FanTasks-2 → 1 DAG; FanSeconds from the
	// trigger call to the run's end_date.
	FanTasks     int     `json:"fan_tasks"`
	FanSeconds   float64 `json:"fan_seconds"`
	FanPerSecond float64 `json:"fan_tasks_per_s"`
	// FanCPUMillisPerTask is the bench process's CPU time (the cluster's:
	// NATS, executor, worker; not the task processes) per task of the
	// fan-out/fan-in run, beside the flat command phase's: less at the
	// mercy of other load than the rate.
	FanCPUMillisPerTask float64 `json:"fan_cpu_ms_per_task"`
	// ChainSteps tasks one after another. StepScheduling is, per step,
	// the upstream's end_date (its success recorded) → the downstream's
	// queued_at (its record made; its activity is published at once, in
	// parallel with the record's write); StepToRunning adds the publish,
	// the worker's pull and its …/run: → the downstream's start_date.
	ChainSteps     int     `json:"chain_steps"`
	ChainSeconds   float64 `json:"chain_seconds"`
	StepScheduling Latency `json:"step_scheduling"`
	StepToRunning  Latency `json:"step_to_running"`
}

// dagPhases measures the DAG-run phases.
func dagPhases(ctx context.Context, c *cluster, cfg Config, prog func(string, int) func(int)) (DagFigures, error) {
	var f DagFigures
	cmd := commandSpec(cfg.TaskBin, ModeNoop, "")
	task := func(id string, ups ...string) dag.Task {
		return dag.Task{TaskID: id, Queue: cmd.Queue, Command: cmd.Command, Env: cmd.Env, DependsOn: ups}
	}
	n := cfg.Tasks
	fan := &dag.DAG{DagID: "bench_fan", Tasks: []dag.Task{task("first")}}
	var mids []string
	for i := range n - 2 {
		id := fmt.Sprintf("t%04d", i)
		fan.Tasks = append(fan.Tasks, task(id, "first"))
		mids = append(mids, id)
	}
	fan.Tasks = append(fan.Tasks, task("last", mids...))
	set := prog(fmt.Sprintf("DAG 1 → %d → 1", n-2), n)
	cpu0 := processCPU()
	v, secs, err := runDag(ctx, c, fan, set)
	if err != nil {
		return f, err
	}
	f.FanTasks, f.FanSeconds, f.FanPerSecond = len(v.TaskInstances), secs, float64(len(v.TaskInstances))/secs
	f.FanCPUMillisPerTask = float64((processCPU() - cpu0).Microseconds()) / 1000 / float64(len(v.TaskInstances))

	steps := 100
	chain := &dag.DAG{DagID: "bench_chain", Tasks: []dag.Task{task("s000")}}
	for i := 1; i < steps; i++ {
		chain.Tasks = append(chain.Tasks, task(fmt.Sprintf("s%03d", i), fmt.Sprintf("s%03d", i-1)))
	}
	set = prog(fmt.Sprintf("DAG chain of %d", steps), steps)
	v, secs, err = runDag(ctx, c, chain, set)
	if err != nil {
		return f, err
	}
	f.ChainSteps, f.ChainSeconds = steps, secs
	var prev *activity.TaskInstance
	var sched, toRun []time.Duration
	for _, rt := range v.TaskInstances {
		ti, err := c.api.Get(ctx, rt.TIID)
		if err != nil {
			return f, fmt.Errorf("chain task %s: %w", rt.TaskID, err)
		}
		if prev != nil && prev.EndDate != nil && ti.QueuedAt != nil && ti.StartDate != nil {
			sched = append(sched, ti.QueuedAt.Sub(*prev.EndDate))
			toRun = append(toRun, ti.StartDate.Sub(*prev.EndDate))
		}
		prev = ti
	}
	f.StepScheduling, f.StepToRunning = summarize(sched), summarize(toRun)
	return f, nil
}

// runDag stores d, triggers a run and waits for its end; it returns the
// run and the seconds from the trigger call to the run's end_date.
func runDag(ctx context.Context, c *cluster, d *dag.DAG, set func(int)) (*dag.RunView, float64, error) {
	if _, err := c.api.PutDag(ctx, d); err != nil {
		return nil, 0, fmt.Errorf("put dag %s: %w", d.DagID, err)
	}
	start := time.Now()
	v, err := c.api.TriggerRun(ctx, d.DagID, dag.TriggerRequest{RunID: "bench"})
	if err != nil {
		return nil, 0, fmt.Errorf("trigger %s: %w", d.DagID, err)
	}
	// The run's end_date is the executor's: polling adds nothing to it. Each
	// poll reads the whole run (1,000 task instances, ≈ 5 ms of the
	// cluster's CPU), so it polls once a second: at 200 ms the observer
	// cost the DAG phase ≈ 2.5 ms of CPU per task, which the flat phase
	// does not pay.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for !v.State.Finished() {
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-t.C:
		}
		if v, err = c.api.DagRun(ctx, d.DagID, "bench"); err != nil {
			return nil, 0, err
		}
		set(v.Counts["success"])
	}
	if v.State != dag.RunSuccess || v.EndDate == nil {
		var bad []string
		for _, ti := range v.TaskInstances {
			if ti.State != activity.StateSuccess {
				bad = append(bad, ti.TaskID+"="+string(ti.State)+" "+ti.Reason)
			}
		}
		return nil, 0, fmt.Errorf("dag %s run %s: %s", d.DagID, v.State, strings.Join(bad, "; "))
	}
	return v, v.EndDate.Sub(start).Seconds(), nil
}
