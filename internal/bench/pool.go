package bench

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/executor"
	"github.com/taskwire/taskwire/queue"
)

// benchPool is the pool of the pool phase.
const benchPool = "bench"

// PoolFigures are the pool phase's: command tasks through a pool whose
// slots are the workers' (so the pool limits nothing the workers do not),
// against the same phase without a pool, and the admission latency.
type PoolFigures struct {
	Throughput
	Slots int `json:"slots"`
	// AdmissionFigures are taken through this pool as large as the
	// workers' slots, at full throughput.
	AdmissionFigures
	// PublishUnderLoad is JetStream's publish → acknowledgement, sampled
	// every few ms while the pooled rounds ran: the raw limit of
	// Admission's last step under the same load.
	PublishUnderLoad Latency `json:"publish_under_load"`
	// Rounds are the pool phase's rounds (bench --pool-rounds), each a
	// pooled and a flat command phase of as many tasks, in turn first;
	// PerFlat is the median of their ratios. In the full run the first
	// round's flat phase is the command phase that ran before it.
	Rounds []PoolRound `json:"rounds,omitempty"`
	// FlatPerSecond and PerFlat are the medians of the rounds' flat
	// throughputs and of their ratios.
	FlatPerSecond float64 `json:"flat_per_s"`
	PerFlat       float64 `json:"per_flat"`
	// FlatCPUMillisPerTask is the median of the flat phases' cluster CPU
	// per task (Throughput's is the pooled phases' median).
	FlatCPUMillisPerTask float64 `json:"flat_cpu_ms_per_task"`
	// Limiting is the same command tasks through a pool of a quarter of
	// the worker slots: the pool, not the workers, holds them back, and the
	// machine is not saturated by the tasks it admits. Its admission
	// latency is the one the target is checked on; Admission above is
	// taken at full throughput, where every round trip waits for a core.
	Limiting *LimitingPool `json:"limiting,omitempty"`
}

// LimitingPool is the pool phase's run through a pool smaller than the
// worker slots.
type LimitingPool struct {
	Throughput
	Slots int `json:"slots"`
	AdmissionFigures
}

// AdmissionFigures are the admission latency of a run through a pool.
type AdmissionFigures struct {
	// Admission is from a task's record giving back its slots (as the
	// executor sees it) to the next waiting task's activity published
	// (acknowledged by the stream); AdmissionSteps are the p50s of its
	// steps (executor.AdmissionSample).
	Admission      Latency        `json:"admission"`
	AdmissionSteps AdmissionSteps `json:"admission_steps"`
	// AdmissionSent is from the same slot freed to the next task's
	// activity's publish issued (sent to the server, its acknowledgement
	// not awaited): Admission without the publish's round trip.
	AdmissionSent Latency `json:"admission_sent"`
}

// AdmissionSteps are the medians of the admission latency's steps, in
// ms: the pass woken, the pass up to its write of the pool record, the
// write's round trip, and the publish to its acknowledgement.
type AdmissionSteps struct {
	// Wake, Pass and Write are absent when every sample was released
	// early (a short run can have none of the others).
	Wake    float64 `json:"wake_p50_ms,omitempty"`
	Pass    float64 `json:"pass_p50_ms,omitempty"`
	Write   float64 `json:"write_p50_ms,omitempty"`
	Publish float64 `json:"publish_p50_ms"`
	// Early counts the samples whose slot was released early, while the
	// freeing task's end was written (executor pools.ending): their pass
	// and pool record write ran beside that write, so they have no wake,
	// pass or write step (the steps' p50s above are the others'). Absent
	// when none was.
	Early int `json:"early,omitempty"`
}

func admissionFigures(ss []executor.AdmissionSample) AdmissionFigures {
	var total, wake, pass, write, publish, issued []time.Duration
	early := 0
	for _, s := range ss {
		total, publish, issued = append(total, s.Total), append(publish, s.Publish), append(issued, s.Sent)
		if s.Early {
			early++
			continue
		}
		wake, pass, write = append(wake, s.Wake), append(pass, s.Pass), append(write, s.Write)
	}
	return AdmissionFigures{Admission: summarize(total), AdmissionSent: summarize(issued), AdmissionSteps: AdmissionSteps{
		Wake: summarize(wake).P50, Pass: summarize(pass).P50, Write: summarize(write).P50, Publish: summarize(publish).P50, Early: early}}
}

// PoolRound is one round of the pool phase.
type PoolRound struct {
	PoolFirst     bool    `json:"pool_first"`
	PoolPerSecond float64 `json:"pool_per_s"`
	FlatPerSecond float64 `json:"flat_per_s"`
	PerFlat       float64 `json:"per_flat"`
	// PoolCPUMillis and FlatCPUMillis are the cluster's CPU per task.
	PoolCPUMillis float64 `json:"pool_cpu_ms_per_task"`
	FlatCPUMillis float64 `json:"flat_cpu_ms_per_task"`
}

// PoolFlags registers the pool phase's flags on fs.
func PoolFlags(fs *flag.FlagSet, cfg *Config) {
	fs.BoolVar(&cfg.PoolOnly, "pool-only", false, "run the pool phase alone (after the JetStream round trip it is compared with): --pool-rounds rounds of command tasks through a pool and without, in turn first")
	fs.IntVar(&cfg.PoolRounds, "pool-rounds", 0, "rounds of the pool phase, each a pooled and a flat command phase of --tasks tasks (the figure is the median of their ratios); default 1, 3 with --pool-only")
}

// poolPhase runs the pool phase's rounds; flat, when it ran, is the
// command phase just before (the first round's flat phase).
func poolPhase(ctx context.Context, c *cluster, cfg Config, flat *Throughput, tp func(name string, spec activity.TaskSpec) (Throughput, error)) (PoolFigures, error) {
	slots := cfg.Workers * cfg.Concurrency
	f := PoolFigures{Slots: slots}
	if err := setBenchPool(ctx, c, slots); err != nil {
		return f, err
	}
	plain := commandSpec(cfg.TaskBin, ModeNoop, "")
	pooled := plain
	pooled.Pool = benchPool
	c.ex.AdmissionLatencies() // only this phase's
	var pools, flats, ratios, cpus, flatCPUs []float64
	var probes []time.Duration
	for i := range cfg.PoolRounds {
		rd := PoolRound{PoolFirst: flat != nil || i%2 == 0}
		runPool := func() error {
			stop := probePublish(ctx, c.observer, &probes)
			t, err := tp(fmt.Sprintf("command tasks through a pool of %d (round %d of %d)", slots, i+1, cfg.PoolRounds), pooled)
			stop()
			if err != nil {
				return fmt.Errorf("pool throughput: %w", err)
			}
			rd.PoolPerSecond, rd.PoolCPUMillis = t.PerSecond, t.CPUMillisPerTask
			if i == 0 {
				f.Throughput = t
			}
			return nil
		}
		runFlat := func() error {
			if flat != nil {
				rd.FlatPerSecond, rd.FlatCPUMillis, flat = flat.PerSecond, flat.CPUMillisPerTask, nil
				return nil
			}
			t, err := tp(fmt.Sprintf("command tasks without a pool (round %d of %d)", i+1, cfg.PoolRounds), plain)
			if err != nil {
				return fmt.Errorf("flat throughput: %w", err)
			}
			rd.FlatPerSecond, rd.FlatCPUMillis = t.PerSecond, t.CPUMillisPerTask
			return nil
		}
		first, second := runPool, runFlat
		if !rd.PoolFirst {
			first, second = runFlat, runPool
		}
		if err := first(); err != nil {
			return f, err
		}
		if err := second(); err != nil {
			return f, err
		}
		rd.PerFlat = ratio(rd.PoolPerSecond, rd.FlatPerSecond)
		f.Rounds = append(f.Rounds, rd)
		pools, flats, ratios = append(pools, rd.PoolPerSecond), append(flats, rd.FlatPerSecond), append(ratios, rd.PerFlat)
		cpus, flatCPUs = append(cpus, rd.PoolCPUMillis), append(flatCPUs, rd.FlatCPUMillis)
	}
	f.PerSecond, f.FlatPerSecond, f.PerFlat = median(pools), median(flats), median(ratios)
	f.CPUMillisPerTask, f.FlatCPUMillisPerTask = median(cpus), median(flatCPUs)
	f.AdmissionFigures = admissionFigures(c.ex.AdmissionLatencies())
	f.PublishUnderLoad = summarize(probes)

	// The limiting pool: a quarter of the slots, so that tasks wait for the
	// pool while the workers have room.
	lim := &LimitingPool{Slots: max(1, slots/4)}
	if err := setBenchPool(ctx, c, lim.Slots); err != nil {
		return f, err
	}
	t, err := tp(fmt.Sprintf("command tasks through a pool of %d (of %d worker slots)", lim.Slots, slots), pooled)
	if err != nil {
		return f, fmt.Errorf("limiting pool throughput: %w", err)
	}
	lim.Throughput = t
	lim.AdmissionFigures = admissionFigures(c.ex.AdmissionLatencies())
	f.Limiting = lim
	return f, nil
}

// setBenchPool makes the bench pool and waits until the executor has it.
func setBenchPool(ctx context.Context, c *cluster, slots int) error {
	if _, err := c.api.SetPool(ctx, benchPool, client.PoolSettings{Slots: slots}); err != nil {
		return fmt.Errorf("set pool: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, err := c.api.Pool(ctx, benchPool)
		if err == nil && p.Slots == slots {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool %s not seen by the executor: %v", benchPool, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// admissionTarget is the admission latency the target is checked on: the
// limiting pool's when it ran.
func (p PoolFigures) admissionTarget() Latency {
	if p.Limiting != nil {
		return p.Limiting.Admission
	}
	return p.Admission
}

// probePublishEvery is how often probePublish publishes.
const probePublishEvery = 5 * time.Millisecond

// probePublish publishes to the raw queue every probePublishEvery, one at
// a time, appending each publish → acknowledgement to out, until the
// returned stop is called (it returns once the prober has stopped).
func probePublish(ctx context.Context, q *queue.Client, out *[]time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	run := time.Now().UnixNano()
	go func() {
		defer close(done)
		t := time.NewTicker(probePublishEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			start := time.Now()
			if err := q.PublishActivity(ctx, queueRaw, fmt.Sprintf("probe-%d-%d", run, i), []byte("x")); err != nil {
				return
			}
			*out = append(*out, time.Since(start))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
