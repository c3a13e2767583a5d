package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is what Run measured.
type Report struct {
	Machine Machine    `json:"machine"`
	Config  RunConfig  `json:"config"`
	Raw     Raw        `json:"raw"`
	Command Throughput `json:"command"`
	GoSDK   Throughput `json:"go_sdk"`
	// Warm is the warm-mode phase (worker warm runtimes).
	Warm     Warm    `json:"warm"`
	Dispatch Latency `json:"dispatch"`
	Deferral Latency `json:"deferral"`
	// ManyQueues is the command throughput phase with its tasks spread over
	// Config.Queues queues.
	ManyQueues Throughput `json:"many_queues"`
	// Pool is the command throughput phase through a pool whose slots are
	// the workers' (pool.go).
	Pool PoolFigures `json:"pool"`
	// DAG is the DAG-run phases (dag.go).
	DAG     DagFigures `json:"dag"`
	Backlog Backlog    `json:"backlog"`
	Timers  []Timers   `json:"timers"`
	// Fleet is the fleet phase at each size (bench --fleet).
	Fleet []Fleet `json:"fleet,omitempty"`
	// Records is the records phase at each size (bench --records).
	Records []Records `json:"records,omitempty"`
	// Airflow is the Airflow phase (bench --airflow), run alone.
	Airflow *AirflowStart `json:"airflow,omitempty"`
	Ratios  Ratios        `json:"ratios"`
	Targets []Target      `json:"targets"`
	// Seconds is the whole run, cluster start and stop included.
	Seconds float64 `json:"seconds"`
}

// Machine describes where the run was.
type Machine struct {
	CPUs int    `json:"cpus"`
	OS   string `json:"os"`
	Arch string `json:"arch"`
	Go   string `json:"go"`
}

// RunConfig is the sizes of the run.
type RunConfig struct {
	Tasks        int     `json:"tasks"`
	Concurrency  int     `json:"concurrency"`
	Workers      int     `json:"workers"`
	Inflight     int     `json:"inflight"`
	LatencyTasks int     `json:"latency_tasks"`
	Deferrals    int     `json:"deferrals"`
	Timers       []int   `json:"timers"`
	LateTimers   int     `json:"late_timers"`
	LateSpreadS  float64 `json:"late_spread_s"`
	Samples      int     `json:"samples"`
	Queues       int     `json:"queues"`
	Backlog      int     `json:"backlog"`
	// Fleet and FleetConcurrency are the fleet phase's sizes; FleetOnly
	// says the other phases did not run.
	Fleet            []int `json:"fleet,omitempty"`
	FleetConcurrency int   `json:"fleet_concurrency,omitempty"`
	FleetOnly        bool  `json:"fleet_only,omitempty"`
	// Records and RecordsOnly are the records phase's sizes; RecordsOnly
	// ran it alone.
	Records     []int `json:"records,omitempty"`
	RecordsOnly bool  `json:"records_only,omitempty"`
	DagOnly     bool  `json:"dag_only,omitempty"`
	WarmOnly    bool  `json:"warm_only,omitempty"`
	DagRounds   int   `json:"dag_rounds"`
	PoolOnly    bool  `json:"pool_only,omitempty"`
	PoolRounds  int   `json:"pool_rounds"`
	// TaskBin is the binary run as the task processes and the Go SDK
	// runtime.
	TaskBin string `json:"task_bin"`
}

// Ratios are figures over their raw limits.
type Ratios struct {
	// CommandPerForkExec is command tasks/s ÷ serial fork+exec/s.
	CommandPerForkExec float64 `json:"command_per_fork_exec"`
	// GoSDKPerHandshake is Go SDK tasks/s ÷ serial handshakes/s.
	GoSDKPerHandshake float64 `json:"go_sdk_per_handshake"`
	// DispatchP50PerRTT is dispatch p50 ÷ JetStream RTT p50.
	DispatchP50PerRTT float64 `json:"dispatch_p50_per_jetstream_rtt_p50"`
	// DispatchP99PerRTT is dispatch p99 ÷ JetStream RTT p99.
	DispatchP99PerRTT float64 `json:"dispatch_p99_per_jetstream_rtt_p99"`
	// DeferralP50PerRTT is deferral p50 ÷ JetStream RTT p50.
	DeferralP50PerRTT float64 `json:"deferral_p50_per_jetstream_rtt_p50"`
	// ManyQueuesPerCommand is many-queues tasks/s ÷ command tasks/s (one
	// queue).
	ManyQueuesPerCommand float64 `json:"many_queues_per_command"`
	// BacklogPerCommand is command tasks/s beside the backlog ÷ without it.
	BacklogPerCommand float64 `json:"backlog_per_command"`
	// DagFanPerCommand is the fan-out/fan-in DAG's tasks/s ÷ the same
	// number of command tasks submitted flat: the median of the DAG
	// rounds' ratios, each against the flat phase next to it
	// (DagFigures.FanPerFlat).
	DagFanPerCommand float64 `json:"dag_fan_per_command"`
	// WarmGoPerCommand is warm Go SDK tasks/s ÷ cold command tasks/s.
	WarmGoPerCommand float64 `json:"warm_go_per_command"`
	// PoolPerCommand is command tasks/s through a pool with slots = the
	// workers' ÷ without a pool: the median of the pool rounds' ratios
	// (PoolFigures.PerFlat).
	PoolPerCommand float64 `json:"pool_per_command"`
}

// Target is a figure beside the performance issue's target for it.
type Target struct {
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	// AtLeast: the value must be ≥ Limit; else ≤ Limit.
	AtLeast bool    `json:"at_least"`
	Limit   float64 `json:"limit"`
	Unit    string  `json:"unit"`
	Met     bool    `json:"met"`
}

func (t Target) String() string {
	op, mark := "≤", "✗"
	if t.AtLeast {
		op = "≥"
	}
	if t.Met {
		mark = "✓"
	}
	unit := t.Unit
	if !strings.HasPrefix(unit, "/") {
		unit = " " + unit
	}
	return fmt.Sprintf("%s %s%s %s", op, trimFloat(t.Limit), unit, mark)
}

// The performance issue's targets.
const (
	targetCommandPerSecond = 600
	targetGoSDKPerSecond   = 400
	targetDispatchP50      = 3  // ms
	targetDispatchP99      = 10 // ms
	targetDeferralP50      = 10 // ms
	targetDeferralP99      = 30 // ms
	targetRSSTimers        = 100_000
	targetRSSMiB           = 512
	targetLatenessP99      = 100 // ms
	targetQueuesRatio      = 0.8 // of the one-queue throughput: "within 20%"
	targetDagFanRatio      = 0.9 // of the flat throughput
	targetPoolRatio        = 0.9 // of the throughput without a pool
	targetAdmissionP50     = 2.0 // ms, slot freed → next waiting task published
	targetDagStepP50       = 2   // ms
	targetDagStepP99       = 10  // ms
	targetWarmPerCommand   = 5   // warm SDK tasks/s ÷ cold command tasks/s
	targetWarmP50          = 5   // ms, warm Python/Java no-op queued → success, one at a time
	targetWarmP99          = 15  // ms
)

// finish fills in the ratios and targets.
func (r *Report) finish() {
	r.Ratios = Ratios{
		CommandPerForkExec:   ratio(r.Command.PerSecond, r.Raw.ForkExecPerSecond),
		GoSDKPerHandshake:    ratio(r.GoSDK.PerSecond, r.Raw.HandshakePerSecond),
		DispatchP50PerRTT:    ratio(r.Dispatch.P50, r.Raw.JetStreamRTT.P50),
		DispatchP99PerRTT:    ratio(r.Dispatch.P99, r.Raw.JetStreamRTT.P99),
		DeferralP50PerRTT:    ratio(r.Deferral.P50, r.Raw.JetStreamRTT.P50),
		ManyQueuesPerCommand: ratio(r.ManyQueues.PerSecond, r.Command.PerSecond),
		BacklogPerCommand:    ratio(r.Backlog.Command.PerSecond, r.Command.PerSecond),
		DagFanPerCommand:     r.DAG.FanPerFlat,
		PoolPerCommand:       r.Pool.PerFlat,
	}
	if r.Warm.Go != nil {
		r.Ratios.WarmGoPerCommand = ratio(r.Warm.Go.PerSecond, r.Command.PerSecond)
	}
	atLeast := func(fig string, v, limit float64, unit string) Target {
		return Target{Figure: fig, Value: v, AtLeast: true, Limit: limit, Unit: unit, Met: v >= limit}
	}
	atMost := func(fig string, v, limit float64, unit string) Target {
		return Target{Figure: fig, Value: v, Limit: limit, Unit: unit, Met: v <= limit}
	}
	if !r.Config.PoolOnly {
		r.Targets = []Target{
			atLeast("command_tasks_per_s", r.Command.PerSecond, targetCommandPerSecond, "/s"),
			atLeast("go_sdk_tasks_per_s", r.GoSDK.PerSecond, targetGoSDKPerSecond, "/s"),
			atMost("dispatch_p50_ms", r.Dispatch.P50, targetDispatchP50, "ms"),
			atMost("dispatch_p99_ms", r.Dispatch.P99, targetDispatchP99, "ms"),
			atMost("deferral_p50_ms", r.Deferral.P50, targetDeferralP50, "ms"),
			atMost("deferral_p99_ms", r.Deferral.P99, targetDeferralP99, "ms"),
			atLeast("many_queues_per_command", r.Ratios.ManyQueuesPerCommand, targetQueuesRatio, "×"),
			atLeast("backlog_per_command", r.Ratios.BacklogPerCommand, targetQueuesRatio, "×"),
			atLeast("dag_fan_per_command", r.Ratios.DagFanPerCommand, targetDagFanRatio, "×"),
			atMost("dag_step_p50_ms", r.DAG.StepScheduling.P50, targetDagStepP50, "ms"),
			atMost("dag_step_p99_ms", r.DAG.StepScheduling.P99, targetDagStepP99, "ms"),
		}
	}
	if r.Pool.Tasks > 0 {
		r.Targets = append(r.Targets,
			atLeast("pool_per_command", r.Ratios.PoolPerCommand, targetPoolRatio, "×"),
			atMost("admission_p50_ms", r.Pool.admissionTarget().P50, targetAdmissionP50, "ms"))
	}
	if r.Warm.Go != nil {
		r.Targets = append(r.Targets, atLeast("warm_go_per_command", r.Ratios.WarmGoPerCommand, targetWarmPerCommand, "×"))
	}
	if w := r.Warm.Python; w != nil {
		r.Targets = append(r.Targets, atMost("warm_python_p50_ms", w.Latency.P50, targetWarmP50, "ms"),
			atMost("warm_python_p99_ms", w.Latency.P99, targetWarmP99, "ms"))
	}
	if w := r.Warm.Java; w != nil {
		r.Targets = append(r.Targets, atMost("warm_java_p50_ms", w.Latency.P50, targetWarmP50, "ms"),
			atMost("warm_java_p99_ms", w.Latency.P99, targetWarmP99, "ms"))
	}
	for _, t := range r.Timers {
		if t.Timers == targetRSSTimers {
			r.Targets = append(r.Targets, atMost(fmt.Sprintf("timers_%d_rss_mib", t.Timers), t.RSSMiB, targetRSSMiB, "MiB"))
		}
		r.Targets = append(r.Targets, atMost(fmt.Sprintf("timers_%d_lateness_p99_ms", t.Timers), t.Lateness.P99, targetLatenessP99, "ms"))
	}
}

// target returns the target of figure, if any.
func (r *Report) target(figure string) string {
	for _, t := range r.Targets {
		if t.Figure == figure {
			return t.String()
		}
	}
	return ""
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a table.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "taskwire bench: %d CPUs, %s/%s, %s; embedded NATS, executor, workers × slots %d × %d, triggerer, all in one process\n",
		r.Machine.CPUs, r.Machine.OS, r.Machine.Arch, r.Machine.Go, c.Workers, c.Concurrency)
	fmt.Fprintf(&b, "task processes: %s\nrun took %.1fs\n\n", c.TaskBin, r.Seconds)
	if a := r.Airflow; a != nil {
		if err := a.writeTable(&b); err != nil {
			return err
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	if c.FleetOnly || c.RecordsOnly {
		if len(r.Fleet) > 0 {
			if err := r.writeFleet(&b); err != nil {
				return err
			}
		}
		if len(r.Records) > 0 {
			if err := r.writeRecords(&b); err != nil {
				return err
			}
		}
		_, err := io.WriteString(w, b.String())
		return err
	}

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "raw limit, same run\tsamples\tvalue")
	fmt.Fprintf(tw, "JetStream publish → pull → ack, p50 / p99\t%d\t%.2f / %.2f ms\n", r.Raw.JetStreamRTT.N, r.Raw.JetStreamRTT.P50, r.Raw.JetStreamRTT.P99)
	if c.PoolOnly {
		return r.writePoolOnly(w, &b, tw)
	}
	fmt.Fprintf(tw, "fork+exec+wait of the task binary in noop mode, serial\t%d\t%s/s, p50 %.2f ms\n", r.Raw.ForkExec.N, thousands(r.Raw.ForkExecPerSecond), r.Raw.ForkExec.P50)
	fmt.Fprintf(tw, "  of which exec → its main, p50 / p99\t%d\t%.2f / %.2f ms\n", r.Raw.ExecToMain.N, r.Raw.ExecToMain.P50, r.Raw.ExecToMain.P99)
	if r.Raw.True.N > 0 {
		fmt.Fprintf(tw, "  for scale: fork+exec+wait of true(1), serial\t%d\t%s/s, p50 %.2f ms\n", r.Raw.True.N, thousands(r.Raw.TruePerSecond), r.Raw.True.P50)
	}
	fmt.Fprintf(tw, "Go SDK child, spawn → handshake → SucceedTask answered → exit, serial\t%d\t%s/s, p50 %.2f ms to the answer\n",
		r.Raw.Handshake.N, thousands(r.Raw.HandshakePerSecond), r.Raw.Handshake.P50)
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n")

	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\traw limit\tratio")
	fmt.Fprintf(tw, "no-op command tasks/s (%d tasks)\t%s/s\t%s\tfork+exec %s/s\t%.2f×\n",
		r.Command.Tasks, thousands(r.Command.PerSecond), r.target("command_tasks_per_s"), thousands(r.Raw.ForkExecPerSecond), r.Ratios.CommandPerForkExec)
	if c.WarmOnly {
		r.writeWarmRows(tw)
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	if !c.DagOnly {
		r.writeOtherRows(tw)
	}
	fmt.Fprintf(tw, "DAG 1 → %d → 1 no-op command tasks/s (trigger → run end), median of %d rounds\t%s/s\t%s\tflat %s/s\t%.2f×\n",
		r.DAG.FanTasks-2, len(r.DAG.Rounds), thousands(r.DAG.FanPerSecond), r.target("dag_fan_per_command"), thousands(r.DAG.FlatPerSecond), r.Ratios.DagFanPerCommand)
	var rounds, cpus []string
	for _, rd := range r.DAG.Rounds {
		rounds = append(rounds, fmt.Sprintf("%s/%s", thousands(rd.DagPerSecond), thousands(rd.FlatPerSecond)))
		cpus = append(cpus, fmt.Sprintf("%.2f", rd.CPUPerFlat))
	}
	fmt.Fprintf(tw, "  each round DAG/flat tasks/s (DAG first, then flat first, …)\t%s\t\t\t\n", strings.Join(rounds, ", "))
	fmt.Fprintf(tw, "  cluster CPU per task: the DAG / flat command tasks, medians; rounds' ratios %s\t%.2f / %.2f ms\t\t\t%.2f×\n",
		strings.Join(cpus, ", "), r.DAG.FanCPUMillisPerTask, r.DAG.FlatCPUMillisPerTask, r.DAG.FanCPUPerFlat)
	fmt.Fprintf(tw, "DAG chain of %d: step scheduling p50 / p99 (upstream end_date → downstream queued_at)\t%.2f / %.2f ms\t%s, %s\t\t\n",
		r.DAG.ChainSteps, r.DAG.StepScheduling.P50, r.DAG.StepScheduling.P99, r.target("dag_step_p50_ms"), r.target("dag_step_p99_ms"))
	fmt.Fprintf(tw, "  step to the downstream running, p50 / p99 (→ its start_date: + publish, pull, …/run)\t%.2f / %.2f ms\t\t\t\n",
		r.DAG.StepToRunning.P50, r.DAG.StepToRunning.P99)
	if c.DagOnly {
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(tw, "cluster CPU per task: command / Go SDK / over %d queues / beside the backlog\t%.2f / %.2f / %.2f / %.2f ms\t\t\t\n",
		c.Queues, r.Command.CPUMillisPerTask, r.GoSDK.CPUMillisPerTask, r.ManyQueues.CPUMillisPerTask, r.Backlog.Command.CPUMillisPerTask)
	fmt.Fprintf(tw, "dispatch latency p50 (%d tasks, one at a time)\t%.2f ms\t%s\tJetStream RTT p50 %.2f ms\t%.1f×\n",
		r.Dispatch.N, r.Dispatch.P50, r.target("dispatch_p50_ms"), r.Raw.JetStreamRTT.P50, r.Ratios.DispatchP50PerRTT)
	fmt.Fprintf(tw, "dispatch latency p99\t%.2f ms\t%s\tJetStream RTT p99 %.2f ms\t%.1f×\n",
		r.Dispatch.P99, r.target("dispatch_p99_ms"), r.Raw.JetStreamRTT.P99, r.Ratios.DispatchP99PerRTT)
	fmt.Fprintf(tw, "dispatch latency max\t%.2f ms\t\t\t\n", r.Dispatch.Max)
	fmt.Fprintf(tw, "deferral round trip p50 (%d, one at a time)\t%.2f ms\t%s\tJetStream RTT p50 %.2f ms\t%.1f×\n",
		r.Deferral.N, r.Deferral.P50, r.target("deferral_p50_ms"), r.Raw.JetStreamRTT.P50, r.Ratios.DeferralP50PerRTT)
	fmt.Fprintf(tw, "deferral round trip p99\t%.2f ms\t%s\t\t\n", r.Deferral.P99, r.target("deferral_p99_ms"))
	for _, t := range r.Timers {
		fmt.Fprintf(tw, "triggerer holding %s timers: RSS\t%.0f MiB\t%s\tclaimed at %s/s\t\n",
			thousands(float64(t.Timers)), t.RSSMiB, r.target(fmt.Sprintf("timers_%d_rss_mib", t.Timers)), thousands(t.ClaimsPerSecond))
		fmt.Fprintf(tw, "  lateness of %s more due over %gs, p50 / p99 / max\t%.2f / %.2f / %.2f ms\t%s\t\t\n",
			thousands(float64(t.Lateness.N)), c.LateSpreadS, t.Lateness.P50, t.Lateness.P99, t.Lateness.Max, r.target(fmt.Sprintf("timers_%d_lateness_p99_ms", t.Timers)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nCluster CPU: user + system time of the bench process (NATS, executor, workers, triggerer, client; not\n"+
		"the task processes) per task of the phase, less at the mercy of other load than the rates are.\n"+
		"Many queues: the command phase's tasks round robin over %d queues, all served by one more worker of\n"+
		"the same slots. Backlog: %s activities published (in %.1fs) on a queue nobody serves, its consumer\n"+
		"created, then the command phase run again on its own queue.\n", c.Queues, thousands(float64(r.Backlog.Messages)), r.Backlog.PublishSeconds)
	b.WriteString(`dispatch latency: from just before Submit is called to the task process's start stamp (it includes the
submit call itself). Deferral round trip: the deferring process's end stamp → the resumed process's start
stamp (timer already due). Throughput ends at the executor's end_date of the last task to succeed. Timer
lateness: fired_at − the timer's moment, while the triggerer (a child process) holds the timers above.
Every task process is the task binary above (cmd/bench/taskbin when it could be built, else the bench
binary itself, which starts slower: compare the fork+exec rows); its exec → main is part of every
dispatch latency and deferral round trip.
`)
	if len(r.Fleet) > 0 {
		b.WriteString("\n")
		if err := r.writeFleet(&b); err != nil {
			return err
		}
	}
	if len(r.Records) > 0 {
		b.WriteString("\n")
		if err := r.writeRecords(&b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeOtherRows writes the throughput rows between the flat command
// row and the DAG rows (left out with DagOnly).
func (r *Report) writeOtherRows(tw io.Writer) {
	c := r.Config
	fmt.Fprintf(tw, "no-op Go SDK tasks/s (%d tasks)\t%s/s\t%s\thandshake %s/s\t%.2f×\n",
		r.GoSDK.Tasks, thousands(r.GoSDK.PerSecond), r.target("go_sdk_tasks_per_s"), thousands(r.Raw.HandshakePerSecond), r.Ratios.GoSDKPerHandshake)
	r.writeWarmRows(tw)
	fmt.Fprintf(tw, "no-op command tasks/s over %d queues\t%s/s\t%s\tone queue %s/s\t%.2f×\n",
		c.Queues, thousands(r.ManyQueues.PerSecond), r.target("many_queues_per_command"), thousands(r.Command.PerSecond), r.Ratios.ManyQueuesPerCommand)
	r.writePoolRows(tw)
	fmt.Fprintf(tw, "no-op command tasks/s beside %s pending in another queue\t%s/s\t%s\tno backlog %s/s\t%.2f×\n",
		thousands(float64(r.Backlog.Messages)), thousands(r.Backlog.Command.PerSecond), r.target("backlog_per_command"), thousands(r.Command.PerSecond), r.Ratios.BacklogPerCommand)
}

// writeWarmRows writes the warm phases' rows.
func (r *Report) writeWarmRows(tw io.Writer) {
	if g := r.Warm.Go; g != nil {
		fmt.Fprintf(tw, "no-op warm Go SDK tasks/s (%d tasks)\t%s/s\t%s\tcold command %s/s\t%.2f×\n",
			g.Tasks, thousands(g.PerSecond), r.target("warm_go_per_command"), thousands(r.Command.PerSecond), r.Ratios.WarmGoPerCommand)
		fmt.Fprintf(tw, "warm Go SDK: cluster CPU per task; queued → success p50 / p99 (%d, one at a time)\t%.2f ms; %.2f / %.2f ms\t\t\t\n",
			g.Latency.N, g.CPUMillisPerTask, g.Latency.P50, g.Latency.P99)
	}
	for _, w := range []struct {
		name string
		r    *WarmRuntime
	}{{"Python (async def)", r.Warm.Python}, {"Java", r.Warm.Java}} {
		if w.r == nil {
			continue
		}
		fmt.Fprintf(tw, "no-op warm %s SDK tasks/s (%d tasks)\t%s/s\t\tcold command %s/s\t%.2f×\n",
			w.name, w.r.Tasks, thousands(w.r.PerSecond), thousands(r.Command.PerSecond), ratio(w.r.PerSecond, r.Command.PerSecond))
		fmt.Fprintf(tw, "warm %s SDK: cluster CPU per task; queued → success p50 / p99 (%d, one at a time)\t%.2f ms; %.2f / %.2f ms\t%s, %s\t\t\n",
			w.name, w.r.Latency.N, w.r.CPUMillisPerTask, w.r.Latency.P50, w.r.Latency.P99, r.target(warmTargetName(w.r, r, "p50")), r.target(warmTargetName(w.r, r, "p99")))
	}
	if s := r.Warm.Sleepers; s != nil {
		fmt.Fprintf(tw, "%s async def Python tasks awaiting %gs at once, one warm process: all done in\t%.1f s\t\t\t\n",
			thousands(float64(s.Tasks)), s.SleepS, s.Seconds)
		fmt.Fprintf(tw, "  most running at once; all started after\t%s; %.1f s\t\t\t\n",
			thousands(float64(s.PeakRunning)), s.AllStartedS)
		fmt.Fprintf(tw, "  RSS: bench process (cluster + worker) peak / Python runtime\t%.0f / %.0f MiB\t\t\t\n",
			s.WorkerRSSMiB, s.RuntimeRSSMiB)
		fmt.Fprintf(tw, "  CPU per task: bench process (cluster + worker) / Python runtime\t%.2f / %.2f ms\t\t\t\n",
			s.CPUMillisPerTask, s.RuntimeCPUMillisPerTask)
	}
}

// writePoolRows writes the pool phase's rows.
func (r *Report) writePoolRows(tw io.Writer) {
	p := r.Pool
	if p.Tasks == 0 {
		return
	}
	of := ""
	if len(p.Rounds) > 1 {
		of = fmt.Sprintf(", medians of %d rounds", len(p.Rounds))
	}
	fmt.Fprintf(tw, "command tasks/s through a pool of %d slots (= worker slots)%s\t%s/s\t%s\twithout a pool %s/s\t%.2f×\n",
		p.Slots, of, thousands(p.PerSecond), r.target("pool_per_command"), thousands(p.FlatPerSecond), r.Ratios.PoolPerCommand)
	if len(p.Rounds) > 1 {
		var rounds []string
		for _, rd := range p.Rounds {
			rounds = append(rounds, fmt.Sprintf("%s/%s", thousands(rd.PoolPerSecond), thousands(rd.FlatPerSecond)))
		}
		fmt.Fprintf(tw, "  each round pool/flat tasks/s (pool first, then flat first, …)\t%s\t\t\t\n", strings.Join(rounds, ", "))
	}
	fmt.Fprintf(tw, "  cluster CPU per task: through the pool / without\t%.2f / %.2f ms\t\t\t%.2f×\n",
		p.CPUMillisPerTask, p.FlatCPUMillisPerTask, ratio(p.CPUMillisPerTask, p.FlatCPUMillisPerTask))
	if l := p.Limiting; l != nil {
		fmt.Fprintf(tw, "admission latency p50 / p99, pool of %d slots of %d (slot freed → next task's publish acknowledged; %d samples; %s tasks/s)\t%.2f / %.2f ms\t%s\tJetStream RTT p50 %.2f ms\t%.2f×\n",
			l.Slots, p.Slots, l.Admission.N, thousands(l.PerSecond), l.Admission.P50, l.Admission.P99, r.target("admission_p50_ms"), r.Raw.JetStreamRTT.P50, ratio(l.Admission.P50, r.Raw.JetStreamRTT.P50))
		fmt.Fprintf(tw, "  slot freed → publish issued p50 / p99; steps' p50s: woken / pass / CAS (%d of %d early) / publish → ack\t%.2f / %.2f; %.2f / %.2f / %.2f / %.2f ms\t\t\t\n",
			l.AdmissionSteps.Early, l.Admission.N, l.AdmissionSent.P50, l.AdmissionSent.P99, l.AdmissionSteps.Wake, l.AdmissionSteps.Pass, l.AdmissionSteps.Write, l.AdmissionSteps.Publish)
	}
	target := ""
	if p.Limiting == nil {
		target = r.target("admission_p50_ms")
	}
	fmt.Fprintf(tw, "admission latency p50 / p99 at full throughput, pool of %d slots (slot freed → next task's publish acknowledged; %d samples)\t%.2f / %.2f ms\t%s\tpublish → ack under the same load p50 %.2f ms\t%.2f×\n",
		p.Slots, p.Admission.N, p.Admission.P50, p.Admission.P99, target, p.PublishUnderLoad.P50, ratio(p.Admission.P50, p.PublishUnderLoad.P50))
	fmt.Fprintf(tw, "  slot freed → next task's publish issued (before its acknowledgement), p50 / p99\t%.2f / %.2f ms\t\t\t\n",
		p.AdmissionSent.P50, p.AdmissionSent.P99)
	st := p.AdmissionSteps
	fmt.Fprintf(tw, "  steps' p50s: pass woken / pass to its write / pool record CAS (%d of %d samples released early: none of these) / publish → ack\t%.2f / %.2f / %.2f / %.2f ms\t\t\t\n",
		st.Early, p.Admission.N, st.Wake, st.Pass, st.Write, st.Publish)
}

// writePoolOnly ends the table of a --pool-only run.
func (r *Report) writePoolOnly(w io.Writer, b *strings.Builder, tw *tabwriter.Writer) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\traw limit\tratio")
	r.writePoolRows(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// thousands formats f rounded to an integer, with commas between
// thousands.
func thousands(f float64) string {
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// trimFloat formats a limit without trailing zeros.
func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}

func machine() Machine {
	return Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
}

// writeFleet writes the fleet phase's table.
func (r *Report) writeFleet(b *strings.Builder) error {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "simulated workers\tall listed after\tlist p50 / max (short)\texecutor CPU idle / load\tworkers' CPU idle\ttasks/s (tasks)\tworkers used\tretried\tstart wait max (≥ 10 s)\tredelivered\twarnings idle / all (lines)")
	for _, f := range r.Fleet {
		fmt.Fprintf(tw, "%s\t%.1f s\t%.1f / %.1f ms (%d)\t%.2f / %.2f cores\t%.2f cores\t%s/s (%d)\t%d of %d\t%d\t%.1f s (%d)\t%d\t%d / %d (%d)\n",
			thousands(float64(f.Workers)), f.ListedSeconds, f.ListP50Millis, f.ListMaxMillis, f.ListShort,
			f.ExecutorIdleCores, f.ExecutorLoadCores, f.FleetIdleCores, thousands(f.Throughput.PerSecond), f.Throughput.Tasks,
			f.DistinctWorkers, f.Workers, f.Retried, f.MaxStartSeconds, f.LateStarts, f.Redelivered, f.WarningsIdle, f.Warnings, f.WarningLines)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(b, "\nFleet: that many workers of %d slot(s), each with its own NATS connection, Execution API client and\n"+
		"registry heartbeat (every 5s), all in one child process, against a fresh executor with embedded NATS in\n"+
		"the bench process (whose CPU is the executor's column). Listed: from the child's start until GET\n"+
		"/api/v1/workers lists them all live. Idle: %s with no task; list latency sampled then (short: lists\n"+
		"missing a worker). Load: no-op command tasks, at least n·ln(100·n) (FleetTasks); workers used ran at least\n"+
		"one. Warnings: those the workers logged; lines: what they took in the log, a storm of one limited.\n",
		r.Config.FleetConcurrency, fleetIdleWindow)
	return nil
}

func (r *Report) writeRecords(b *strings.Builder) error {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "finished records\tbytes each\twritten in\tstart\tready in\trecords decoded\tRSS\tGo heap\ttwo pages of 100 successes")
	for _, x := range r.Records {
		if x.Error != "" {
			fmt.Fprintf(tw, "%s\t%d\t%.1f s\t\tnot ready: %s\n", thousands(float64(x.Records)), x.RecordBytes, x.WriteSeconds, x.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f s\tfirst (reads all)\t%.2f s\t%s\t%.1f MB\t%.1f MB\t%.1f ms\n",
			thousands(float64(x.Records)), x.RecordBytes, x.WriteSeconds, x.ReadySeconds, thousands(float64(x.Decoded)), x.RSSMB, x.HeapMB, x.ListMillis)
		y := x.Restart
		fmt.Fprintf(tw, "\t\t\trestart (index)\t%.2f s\t%s\t%.1f MB\t%.1f MB\t%.1f ms\n",
			y.ReadySeconds, thousands(float64(y.Decoded)), y.RSSMB, y.HeapMB, y.ListMillis)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\nRecords: that many finished task-instance records in the task_instances bucket of an embedded NATS\n" +
		"(in the bench process), then an executor child started on them (record cache at its default, 10,000):\n" +
		"ready when Start returns; RSS and heap after a GC; then the newest 100 successes and the next page,\n" +
		"read from storage. The first start reads every record (written by the bench, not an executor: no\n" +
		"snapshot) and its clean stop saves the snapshot (counts, unfinished ids); the restart reads only\n" +
		"the records it lists (none here).\n")
	return nil
}

// warmTargetName is the target figure of a warm runtime's latency quantile
// q ("p50", "p99").
func warmTargetName(w *WarmRuntime, r *Report, q string) string {
	sdk := "java"
	if w == r.Warm.Python {
		sdk = "python"
	}
	return "warm_" + sdk + "_" + q + "_ms"
}
