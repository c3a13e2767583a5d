package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// BenchmarkDeferralRoundTrip measures a deferral on an already-due timer,
// from the deferring process's end to the resumed process's start (worker
// report, executor, TRIGGERS, triggerer claim and fire, EVENTS, executor
// resume, ACTIVITIES, worker, fork+exec), one task at a time, beside the raw
// JetStream round trip and fork+exec measured in the same run.
//
//	go test -run '^$' -bench DeferralRoundTrip -benchtime 200x ./integration/
func BenchmarkDeferralRoundTrip(b *testing.B) {
	c := newCluster(b, clusterOpts{logLevel: "info"})
	c.startWorker(workerOpts{extra: []string{"--log-level", "info"}})
	c.startTriggerer(triggererOpts{extra: []string{"--log-level", "info"}})
	bin := testbin.MustBuild(b, "./integration/testdata/deferstamp")
	dir := b.TempDir()
	spec := activity.TaskSpec{Queue: "default", TaskID: "deferstamp",
		Entrypoint: activity.Entrypoint{Command: []string{bin}, Env: map[string]string{"STAMP_DIR": dir}}}
	ctx := context.Background()
	js := rawJetStream(b, c, 300)
	fe := rawForkExec(b, testbin.MustBuild(b, "./integration/testdata/stamp"), 100)

	run := func() time.Duration {
		ti, err := c.api.Submit(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		ti, err = c.api.Wait(ctx, ti.ID, nil)
		if err != nil || ti.State != activity.StateSuccess || ti.TryNumber != 1 {
			b.Fatalf("deferring task: %v %+v", err, ti)
		}
		return stampAt(b, dir, ti.ID+".resume").Sub(stampAt(b, dir, ti.ID+".defer"))
	}
	for range 10 {
		run() // warm up
	}
	b.ResetTimer()
	rts := make([]time.Duration, 0, b.N)
	for range b.N {
		rts = append(rts, run())
	}
	b.StopTimer()
	p50, p99 := quantile(rts, 0.5), quantile(rts, 0.99)
	b.ReportMetric(ms(p50), "roundtrip_p50_ms")
	b.ReportMetric(ms(p99), "roundtrip_p99_ms")
	b.ReportMetric(ms(quantile(js, 0.5)), "raw_js_rtt_p50_ms")
	b.ReportMetric(ms(quantile(fe, 0.5)), "raw_forkexec_p50_ms")
	b.ReportMetric(float64(p50)/float64(quantile(js, 0.5)), "roundtrip_p50_per_js_rtt")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d deferrals: round trip p50 %.2fms p99 %.2fms (targets 10ms / 30ms); %.1f× JetStream RTT p50 %.2fms; fork+exec p50 %.2fms",
		b.N, ms(p50), ms(p99), float64(p50)/float64(quantile(js, 0.5)), ms(quantile(js, 0.5)), ms(quantile(fe, 0.5)))
}

func stampAt(b *testing.B, dir, name string) time.Time {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		b.Fatalf("stamp %s: %v", name, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Unix(0, n)
}

// BenchmarkTriggererTimers has one triggerer process hold n datetime
// triggers due in an hour and reports its RSS and how fast it claimed them;
// then, while it holds them, 10,000 more timers due over 5 seconds measure
// how late timers fire (fired_at − moment, both on the triggerer's clock).
// No executor runs: the benchmark reads the events itself.
//
//	go test -run '^$' -bench 'TriggererTimers' -benchtime 1x ./integration/
func BenchmarkTriggererTimers(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			for range b.N {
				benchTimers(b, n)
			}
		})
	}
}

func benchTimers(b *testing.B, n int) {
	const late = 10_000
	c := &cluster{t: b, bins: buildAll(b), dir: b.TempDir()}
	c.nats = natstest.RunServer(b)
	c.natsURL = c.nats.ClientURL()
	ctx := context.Background()
	q, err := queue.New(ctx, natstest.Connect(b, c.nats), queue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	evCons, err := q.EventConsumer(ctx)
	if err != nil {
		b.Fatal(err)
	}
	tr := c.startTriggerer(triggererOpts{capacity: n + late, extra: []string{"--log-level", "info"}})
	publish := func(count int, moment func(i int) time.Time, prefix string) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := queuetest.PublishMany(pctx, q.Conn(), count, func(i int) (string, []byte, string) {
			t := activity.Trigger{ID: fmt.Sprintf("%s-%d.1", prefix, i), Classpath: "datetime", Kind: "datetime",
				Kwargs: map[string]any{"moment": moment(i).UTC().Format(time.RFC3339Nano)},
				TIID:   fmt.Sprintf("%s-%d", prefix, i), Try: 1, DeferredAt: time.Now().UTC()}
			data, _ := json.Marshal(t)
			return queue.TriggerSubject, data, t.ID
		})
		if err != nil {
			b.Fatalf("publishing triggers: %v", err)
		}
	}

	b.ResetTimer()
	start := time.Now()
	hour := start.Add(time.Hour)
	publish(n, func(int) time.Time { return hour }, "hold")
	c.waitHeld(tr, n, 5*time.Minute)
	claimed := time.Since(start)
	rss := rssOf(b, tr.Cmd.Process.Pid)

	// Lateness while holding n: 10,000 timers due over 5s, starting 3s out.
	base := time.Now().Add(3 * time.Second)
	publish(late, func(i int) time.Time { return base.Add(time.Duration(i) * 5 * time.Second / late) }, "late")
	lateness := make([]time.Duration, 0, late)
	deadline := time.Now().Add(2 * time.Minute)
	for len(lateness) < late && time.Now().Before(deadline) {
		batch, err := evCons.Fetch(1000, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		for m := range batch.All() {
			_ = m.Ack()
			ev, err := activity.DecodeTriggerEvent(m.Data())
			if err != nil {
				b.Fatal(err)
			}
			i, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(ev.TriggerID, "late-"), ".1"))
			lateness = append(lateness, ev.FiredAt.Sub(base.Add(time.Duration(i)*5*time.Second/late)))
		}
	}
	b.StopTimer()
	if len(lateness) < late {
		b.Fatalf("%d of %d timers fired", len(lateness), late)
	}
	p50, p99, worst := quantile(lateness, 0.5), quantile(lateness, 0.99), quantile(lateness, 1)
	b.ReportMetric(float64(rss)/(1<<20), "rss_MiB")
	b.ReportMetric(float64(n)/claimed.Seconds(), "claims/s")
	b.ReportMetric(ms(p50), "lateness_p50_ms")
	b.ReportMetric(ms(p99), "lateness_p99_ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d timers held: RSS %.0f MiB (%.0f B/trigger; target < 512 MiB at 100k), claimed in %s (%.0f/s); "+
		"lateness of %d more: p50 %.2fms p99 %.2fms max %.2fms (target p99 ≤ 100ms)",
		n, float64(rss)/(1<<20), float64(rss)/float64(n), claimed.Round(time.Millisecond), float64(n)/claimed.Seconds(),
		late, ms(p50), ms(p99), ms(worst))
}

// rssOf reads a process's resident set size in bytes.
func rssOf(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkRuntimeStart measures what starting a task costs in each runtime:
// a no-op task from queued to its outcome reported (worker pull, …/run,
// process start, StartupDetails, the runtime's SucceedTask, the report), on
// the executor's clock, one task at a time, beside fork+exec of a trivial
// binary in the same run.
//
//	go test -run '^$' -bench RuntimeStart -benchtime 30x ./integration/
func BenchmarkRuntimeStart(b *testing.B) {
	c := newCluster(b, clusterOpts{logLevel: "info"})
	// One slot per queue: with fewer slots than queues, an idle queue's pull
	// holds a slot for up to --fetch-max-wait (the performance issue's subject).
	c.startWorker(workerOpts{queues: "default,go,python,java", config: c.runtimeFile(b), concurrency: 4, extra: []string{"--log-level", "info"}})
	fe := rawForkExec(b, testbin.MustBuild(b, "./integration/testdata/stamp"), 100)
	ctx := context.Background()
	specs := []struct {
		name string
		spec activity.TaskSpec
	}{
		{"command", activity.TaskSpec{Queue: "default", Entrypoint: activity.Entrypoint{Command: []string{"true"}}}},
		{"go", activity.TaskSpec{Queue: "go", Entrypoint: activity.Entrypoint{Task: "noop"}}},
		{"python", activity.TaskSpec{Queue: "python", Entrypoint: activity.Entrypoint{Task: "noop"}}},
		{"java", activity.TaskSpec{Queue: "java", Entrypoint: activity.Entrypoint{Task: "noop"}}},
	}
	for _, s := range specs {
		b.Run(s.name, func(b *testing.B) {
			costs := make([]time.Duration, 0, b.N)
			for i := range b.N + 3 {
				ti, err := c.api.Submit(ctx, s.spec)
				if err != nil {
					b.Fatal(err)
				}
				ti, err = c.api.Wait(ctx, ti.ID, nil)
				if err != nil || ti.State != activity.StateSuccess {
					b.Fatalf("%s noop: %v %+v", s.name, err, ti)
				}
				if i >= 3 { // warm-up
					costs = append(costs, ti.EndDate.Sub(*ti.QueuedAt))
				}
			}
			b.ReportMetric(ms(quantile(costs, 0.5)), "start_p50_ms")
			b.ReportMetric(ms(quantile(costs, 0.99)), "start_p99_ms")
			b.ReportMetric(float64(quantile(costs, 0.5))/float64(quantile(fe, 0.5)), "p50_per_forkexec")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: queued → outcome p50 %.1fms p99 %.1fms (%.1f× fork+exec p50 %.2fms)", s.name,
				ms(quantile(costs, 0.5)), ms(quantile(costs, 0.99)), float64(quantile(costs, 0.5))/float64(quantile(fe, 0.5)), ms(quantile(fe, 0.5)))
		})
	}
}
