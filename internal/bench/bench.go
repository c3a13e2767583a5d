package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// Run measures taskwire and the machine's raw limits (see the package doc)
// and returns the report. It stops when ctx is done, and removes what it
// made (temporary directories, child processes) before it returns. A task
// that does not succeed fails the run (*TaskError).
func Run(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	began := time.Now()
	dir, err := os.MkdirTemp(cfg.TempDir, "taskwire-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove temp dir: %w", rerr))
		}
	}()
	prog := newProgress(cfg.Progress)
	defer prog.close()

	r := &Report{Machine: machine(), Config: RunConfig{
		Tasks: cfg.Tasks, Concurrency: cfg.Concurrency, Workers: cfg.Workers, Inflight: cfg.Inflight,
		LatencyTasks: cfg.LatencyTasks, Deferrals: cfg.Deferrals, Timers: cfg.Timers,
		LateTimers: cfg.LateTimers, LateSpreadS: cfg.LateSpread.Seconds(), Samples: cfg.Samples,
		Queues: cfg.Queues, Backlog: cfg.Backlog,
		Fleet: cfg.Fleet, FleetConcurrency: cfg.FleetConcurrency, FleetOnly: cfg.FleetOnly,
		Records: cfg.Records, RecordsOnly: cfg.RecordsOnly,
		DagOnly: cfg.DagOnly, WarmOnly: cfg.WarmOnly, DagRounds: cfg.DagRounds, PoolOnly: cfg.PoolOnly, PoolRounds: cfg.PoolRounds,
		TaskBin: filepath.Base(cfg.TaskBin),
	}}
	if cfg.Airflow != "" {
		if r.Airflow, err = airflowPhase(ctx, cfg, filepath.Join(dir, "airflow"), prog); err != nil {
			return nil, fmt.Errorf("airflow phase: %w", err)
		}
		r.Seconds = time.Since(began).Seconds()
		return r, nil
	}
	if len(cfg.Fleet) > 0 {
		if r.Fleet, err = fleets(ctx, cfg, dir, prog); err != nil {
			return nil, err
		}
	}
	if len(cfg.Records) > 0 {
		if r.Records, err = records(ctx, cfg, filepath.Join(dir, "records"), prog); err != nil {
			return nil, err
		}
	}
	if cfg.FleetOnly || cfg.RecordsOnly {
		r.Seconds = time.Since(began).Seconds()
		return r, nil
	}
	if err := runCluster(ctx, cfg, dir, prog, r); err != nil {
		return nil, err
	}
	if cfg.SleepersOnly {
		r.Seconds = time.Since(began).Seconds()
		return r, nil
	}
	if cfg.PoolOnly {
		r.Seconds = time.Since(began).Seconds()
		r.finish()
		return r, nil
	}
	for i, n := range cfg.Timers {
		if cfg.DagOnly || cfg.WarmOnly {
			break
		}
		var done atomic.Int64
		prog.set(fmt.Sprintf("timers: %d held", n), n, counter(&done))
		tdir := filepath.Join(dir, fmt.Sprintf("timers-%d", i))
		t, err := timers(ctx, cfg, tdir, n, &done, func() {
			prog.set(fmt.Sprintf("timers: %d late", cfg.LateTimers), cfg.LateTimers, counter(&done))
		})
		if rerr := os.RemoveAll(tdir); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil {
			return nil, fmt.Errorf("triggerer holding %d timers: %w", n, err)
		}
		r.Timers = append(r.Timers, t)
	}
	r.Seconds = time.Since(began).Seconds()
	r.finish()
	return r, nil
}

// runCluster runs the phases that need the cluster, which it starts and
// stops.
func runCluster(ctx context.Context, cfg Config, dir string, prog *progress, r *Report) (err error) {
	prog.set("starting cluster", 0, nil)
	c, err := startCluster(ctx, cfg, dir)
	if err != nil {
		return err
	}
	defer func() {
		prog.set("stopping cluster", 0, nil)
		if serr := c.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	stamps := filepath.Join(dir, "stamps")
	if err := os.Mkdir(stamps, 0o755); err != nil {
		return err
	}

	var done atomic.Int64
	phase := func(name string, total int) *atomic.Int64 {
		done.Store(0)
		prog.set(name, total, counter(&done))
		return &done
	}
	if cfg.SleepersOnly {
		if r.Warm.Sleepers, err = sleepers(ctx, c, cfg, dir, phase(fmt.Sprintf("%d sleeping Python tasks", cfg.Sleepers), cfg.Sleepers)); err != nil {
			return fmt.Errorf("sleepers: %w", err)
		}
		return nil
	}
	n := cfg.Samples
	if r.Raw.JetStreamRTT, err = rawJetStream(ctx, c.observer, n, phase("raw: JetStream RTT", n)); err != nil {
		return fmt.Errorf("raw JetStream round trip: %w", err)
	}
	tp := func(name string, spec activity.TaskSpec) (Throughput, error) {
		base := c.tracker.ended.Load()
		prog.set(name, cfg.Tasks, func() int { return int(c.tracker.ended.Load() - base) })
		if cfg.OnThroughput != nil {
			defer cfg.OnThroughput(name)()
		}
		return throughput(ctx, c, spec, cfg.Tasks, cfg.Inflight)
	}
	if cfg.PoolOnly {
		r.Pool, err = poolPhase(ctx, c, cfg, nil, tp)
		return err
	}
	fe, toMain, err := rawForkExecSelf(ctx, cfg.TaskBin, stamps, n, phase("raw: fork+exec", n))
	if err != nil {
		return fmt.Errorf("raw fork+exec: %w", err)
	}
	r.Raw.ForkExecPerSecond, r.Raw.ForkExec, r.Raw.ExecToMain = perSecond(fe), summarize(fe), summarize(toMain)
	if tru, err := exec.LookPath("true"); err == nil {
		fe, err := rawForkExec(n, phase("raw: fork+exec true", n), func(int) *exec.Cmd { return exec.CommandContext(ctx, tru) }, nil)
		if err != nil {
			return fmt.Errorf("raw fork+exec: %w", err)
		}
		r.Raw.TruePerSecond, r.Raw.True = perSecond(fe), summarize(fe)
	}
	iters, answered, err := rawHandshake(ctx, cfg.TaskBin, n, phase("raw: Go SDK handshake", n))
	if err != nil {
		return fmt.Errorf("raw go sdk handshake: %w", err)
	}
	r.Raw.HandshakePerSecond, r.Raw.Handshake = perSecond(iters), summarize(answered)

	if r.Dispatch, err = dispatch(ctx, c, cfg.TaskBin, stamps, cfg.LatencyTasks, phase("dispatch latency", cfg.LatencyTasks)); err != nil {
		return fmt.Errorf("dispatch latency: %w", err)
	}
	if r.Command, err = tp("command tasks", commandSpec(cfg.TaskBin, ModeNoop, "")); err != nil {
		return fmt.Errorf("command throughput: %w", err)
	}
	if !cfg.WarmOnly {
		if err := coldPhases(ctx, c, cfg, prog, tp, r); err != nil || cfg.DagOnly {
			return err
		}
	}
	r.Warm.Go = &WarmRuntime{}
	if r.Warm.Go.Throughput, err = tp("warm Go SDK tasks", goWarmSpec()); err != nil {
		return fmt.Errorf("warm go sdk throughput: %w", err)
	}
	wl := phase("warm Go SDK latency", cfg.LatencyTasks)
	if r.Warm.Go.Latency, err = oneAtATime(ctx, c, goWarmSpec(), cfg.LatencyTasks, func() { wl.Add(1) }); err != nil {
		return fmt.Errorf("warm go sdk latency: %w", err)
	}
	if cfg.Python != "" {
		if r.Warm.Python, err = warmSDK(ctx, c, cfg, "Python", queuePyWarm, tp, phase); err != nil {
			return err
		}
	}
	if cfg.JavaSDKJar != "" {
		if r.Warm.Java, err = warmSDK(ctx, c, cfg, "Java", queueJavaWarm, tp, phase); err != nil {
			return err
		}
	}
	if cfg.Sleepers > 0 {
		if r.Warm.Sleepers, err = sleepers(ctx, c, cfg, dir, phase(fmt.Sprintf("%d sleeping Python tasks", cfg.Sleepers), cfg.Sleepers)); err != nil {
			return fmt.Errorf("sleepers: %w", err)
		}
	}
	if cfg.WarmOnly {
		return nil
	}
	if r.Deferral, err = deferral(ctx, c, cfg.TaskBin, stamps, cfg.Deferrals, phase("deferral round trip", cfg.Deferrals)); err != nil {
		return fmt.Errorf("deferral round trip: %w", err)
	}
	base := c.tracker.ended.Load()
	prog.set(fmt.Sprintf("command tasks over %d queues", cfg.Queues), cfg.Tasks, func() int { return int(c.tracker.ended.Load() - base) })
	if r.ManyQueues, err = manyQueues(ctx, c, cfg, cfg.Queues); err != nil {
		return fmt.Errorf("throughput over %d queues: %w", cfg.Queues, err)
	}
	// Last: the backlog stays in the stream until the cluster stops.
	pub, err := publishBacklog(ctx, c.observer, cfg.Backlog, phase(fmt.Sprintf("backlog: publishing %d", cfg.Backlog), cfg.Backlog))
	if err != nil {
		return fmt.Errorf("backlog: %w", err)
	}
	r.Backlog = Backlog{Messages: cfg.Backlog, PublishSeconds: pub.Seconds()}
	if r.Backlog.Command, err = tp("command tasks beside the backlog", commandSpec(cfg.TaskBin, ModeNoop, "")); err != nil {
		return fmt.Errorf("command throughput beside the backlog: %w", err)
	}
	return nil
}

// coldPhases runs the phases between the flat command phase and the warm
// ones: through a pool, the DAG runs and the cold Go SDK tasks.
func coldPhases(ctx context.Context, c *cluster, cfg Config, prog *progress,
	tp func(string, activity.TaskSpec) (Throughput, error), r *Report) (err error) {
	if r.Pool, err = poolPhase(ctx, c, cfg, &r.Command, tp); err != nil {
		return err
	}
	dagProg := func(name string, total int) {
		base := c.tracker.ended.Load()
		prog.set(name, total, func() int { return int(c.tracker.ended.Load() - base) })
	}
	if r.DAG, err = dagPhases(ctx, c, cfg, dagProg); err != nil {
		return fmt.Errorf("dag runs: %w", err)
	}
	if cfg.DagOnly {
		return nil
	}
	if r.GoSDK, err = tp("Go SDK tasks", goSpec()); err != nil {
		return fmt.Errorf("go sdk throughput: %w", err)
	}
	return nil
}

func counter(n *atomic.Int64) func() int { return func() int { return int(n.Load()) } }
