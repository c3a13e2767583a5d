package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
)

// DagFigures are the DAG-run phases: a fan-out/fan-in and a chain of
// no-op command tasks.
type DagFigures struct {
	// FanTasks tasks in a 1 → FanTasks-2 → 1 DAG, run DagRounds times, each
	// time next to a flat phase of the same number of command tasks (the
	// order alternating round by round: DAG first, then flat first), so
	// each round's ratio compares two phases a few seconds apart under
	// the same load: the machine's other load moves both rates of a round
	// alike, and the median of the rounds' ratios is the figure.
	FanTasks int        `json:"fan_tasks"`
	Rounds   []DagRound `json:"rounds"`
	// FanPerSecond and FlatPerSecond are the medians of the rounds' rates;
	// FanPerFlat the median of the rounds' DAG ÷ flat ratios.
	FanPerSecond  float64 `json:"fan_tasks_per_s"`
	FlatPerSecond float64 `json:"flat_tasks_per_s"`
	FanPerFlat    float64 `json:"fan_per_flat"`
	// FanCPUMillisPerTask and FlatCPUMillisPerTask are the medians of the
	// rounds' CPU time of the bench process (the cluster's: NATS,
	// executor, worker; not the task processes) per task; FanCPUPerFlat
	// the median of the rounds' ratios: what the DAG's scheduling costs
	// beside submitting the tasks, less at the mercy of other load than
	// the rates.
	FanCPUMillisPerTask  float64 `json:"fan_cpu_ms_per_task"`
	FlatCPUMillisPerTask float64 `json:"flat_cpu_ms_per_task"`
	FanCPUPerFlat        float64 `json:"fan_cpu_per_flat"`
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

// DagRound is one fan-out/fan-in run and the flat phase next to it.
type DagRound struct {
	DagFirst      bool    `json:"dag_first"`
	DagSeconds    float64 `json:"dag_seconds"`
	DagPerSecond  float64 `json:"dag_tasks_per_s"`
	FlatPerSecond float64 `json:"flat_tasks_per_s"`
	DagCPUMillis  float64 `json:"dag_cpu_ms_per_task"`
	FlatCPUMillis float64 `json:"flat_cpu_ms_per_task"`
	PerFlat       float64 `json:"dag_per_flat"`
	CPUPerFlat    float64 `json:"dag_cpu_per_flat"`
}

// dagPhases measures the DAG-run phases.
func dagPhases(ctx context.Context, c *cluster, cfg Config, prog func(name string, total int)) (DagFigures, error) {
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
	f.FanTasks = len(fan.Tasks)
	for i := range cfg.DagRounds {
		rd := DagRound{DagFirst: i%2 == 0}
		runDagPhase := func() error {
			name := fmt.Sprintf("DAG 1 → %d → 1 (round %d of %d)", n-2, i+1, cfg.DagRounds)
			cpu0 := processCPU()
			_, secs, err := runDag(ctx, c, fan, fmt.Sprintf("bench-%d", i), func() { prog(name, n) })
			if err != nil {
				return err
			}
			rd.DagSeconds, rd.DagPerSecond = secs, float64(n)/secs
			rd.DagCPUMillis = float64((processCPU() - cpu0).Microseconds()) / 1000 / float64(n)
			return nil
		}
		runFlat := func() error {
			prog(fmt.Sprintf("flat command tasks (round %d of %d)", i+1, cfg.DagRounds), n)
			t, err := throughput(ctx, c, cmd, n, cfg.Inflight)
			if err != nil {
				return fmt.Errorf("flat command tasks: %w", err)
			}
			rd.FlatPerSecond, rd.FlatCPUMillis = t.PerSecond, t.CPUMillisPerTask
			return nil
		}
		first, second := runDagPhase, runFlat
		if !rd.DagFirst {
			first, second = runFlat, runDagPhase
		}
		if err := first(); err != nil {
			return f, err
		}
		if err := second(); err != nil {
			return f, err
		}
		rd.PerFlat, rd.CPUPerFlat = ratio(rd.DagPerSecond, rd.FlatPerSecond), ratio(rd.DagCPUMillis, rd.FlatCPUMillis)
		f.Rounds = append(f.Rounds, rd)
	}
	med := func(v func(DagRound) float64) float64 {
		xs := make([]float64, len(f.Rounds))
		for i, rd := range f.Rounds {
			xs[i] = v(rd)
		}
		return median(xs)
	}
	f.FanPerSecond = med(func(rd DagRound) float64 { return rd.DagPerSecond })
	f.FlatPerSecond = med(func(rd DagRound) float64 { return rd.FlatPerSecond })
	f.FanPerFlat = med(func(rd DagRound) float64 { return rd.PerFlat })
	f.FanCPUMillisPerTask = med(func(rd DagRound) float64 { return rd.DagCPUMillis })
	f.FlatCPUMillisPerTask = med(func(rd DagRound) float64 { return rd.FlatCPUMillis })
	f.FanCPUPerFlat = med(func(rd DagRound) float64 { return rd.CPUPerFlat })

	steps := 100
	chain := &dag.DAG{DagID: "bench_chain", Tasks: []dag.Task{task("s000")}}
	for i := 1; i < steps; i++ {
		chain.Tasks = append(chain.Tasks, task(fmt.Sprintf("s%03d", i), fmt.Sprintf("s%03d", i-1)))
	}
	v, secs, err := runDag(ctx, c, chain, "bench", func() { prog(fmt.Sprintf("DAG chain of %d", steps), steps) })
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

// runDag stores d, triggers run runID and waits for its end; it returns
// the run and the seconds from the trigger call to the run's end_date.
// It waits as the flat phases do, on the tracker (a watch of the task
// instances: what it costs, the flat phases pay alike), for each task
// instance's end in the order of d's tasks — their ids are the run's
// name-based ones —, and reads the run once at its end: polling the run
// (1,000 task instances, ≈ 10 ms of the cluster's CPU a read) would
// charge the DAG phase for the observer. started is called once the run
// is triggered (the progress line counts the tracker's ends from then).
func runDag(ctx context.Context, c *cluster, d *dag.DAG, runID string, started func()) (*dag.RunView, float64, error) {
	if _, err := c.api.PutDag(ctx, d); err != nil {
		return nil, 0, fmt.Errorf("put dag %s: %w", d.DagID, err)
	}
	start := time.Now()
	if _, err := c.api.TriggerRun(ctx, d.DagID, dag.TriggerRequest{RunID: runID}); err != nil {
		return nil, 0, fmt.Errorf("trigger %s: %w", d.DagID, err)
	}
	started()
	for _, t := range d.Tasks {
		if _, err := c.tracker.succeeded(ctx, dag.InstanceID(d.DagID, runID, t.TaskID, -1, 0)); err != nil {
			return nil, 0, fmt.Errorf("dag %s run %s task %s: %w", d.DagID, runID, t.TaskID, err)
		}
	}
	// The run ends with the evaluation that follows the last task's end.
	for {
		v, err := c.api.DagRun(ctx, d.DagID, runID)
		if err != nil {
			return nil, 0, err
		}
		if v.State.Finished() {
			if v.State != dag.RunSuccess || v.EndDate == nil {
				return nil, 0, fmt.Errorf("dag %s run %s: %s", d.DagID, runID, v.State)
			}
			return v, v.EndDate.Sub(start).Seconds(), nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// median is the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
