package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rawJetStream measures publish → pull → ack round trips on the same server.
func rawJetStream(b *testing.B, c *cluster, n int) []time.Duration {
	ctx := context.Background()
	qc, err := queue.New(ctx, natstest.Connect(b, c.nats), queue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := qc.ActivityConsumer(ctx, "rawbench")
	if err != nil {
		b.Fatal(err)
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := qc.PublishActivity(ctx, "rawbench", fmt.Sprintf("raw-%d", i), []byte("x")); err != nil {
			b.Fatal(err)
		}
		msg, err := queuetest.Next(cons, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if err := msg.DoubleAck(ctx); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// rawForkExec measures serial fork+exec of a trivial binary.
func rawForkExec(b *testing.B, bin string, n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := exec.Command(bin).Run(); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// BenchmarkEndToEnd runs b.N no-op command tasks through a real executor
// and worker (processes) on a real NATS server, and reports, beside the raw
// limits measured in the same run: throughput (tasks/s, first submit to last
// success), dispatch latency (submit accepted → task process started) at a
// low rate, and each figure's ratio to its raw limit.
//
//	go test -run '^$' -bench EndToEnd -benchtime 1000x ./integration/
func BenchmarkEndToEnd(b *testing.B) {
	c := newCluster(b, clusterOpts{logLevel: "info"})
	concurrency := 8
	if s := os.Getenv("TASKWIRE_BENCH_CONCURRENCY"); s != "" {
		concurrency, _ = strconv.Atoi(s)
	}
	c.startWorker(workerOpts{concurrency: concurrency, extra: []string{"--log-level", "info"}})
	stamp := testbin.MustBuild(b, "./integration/testdata/stamp")
	dir := b.TempDir()
	spec := activity.TaskSpec{Queue: "default", TaskID: "noop",
		Entrypoint: activity.Entrypoint{Command: []string{stamp}, Env: map[string]string{"STAMP_DIR": dir}}}
	ctx := context.Background()

	js := rawJetStream(b, c, 300)
	fe := rawForkExec(b, stamp, 300)
	forkRate := float64(len(fe)) / sumDur(fe).Seconds()

	// Warm up, then dispatch latency at a low rate: one task at a time.
	latencies := make([]time.Duration, 0, 100)
	for i := range 110 {
		submitted := time.Now()
		ti, err := c.api.Submit(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		ti, err = c.api.Wait(ctx, ti.ID, nil)
		if err != nil || ti.State != activity.StateSuccess {
			b.Fatalf("latency task: %v %+v", err, ti)
		}
		started := readStamp(b, dir, ti.ID)
		if i >= 10 {
			latencies = append(latencies, started.Sub(submitted))
		}
	}

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	ids := make(chan string, b.N)
	sem := make(chan struct{}, 16)
	for range b.N {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ti, err := c.api.Submit(ctx, spec)
			if err != nil {
				b.Error(err)
				return
			}
			ids <- ti.ID
		}()
	}
	wg.Wait()
	close(ids)
	want := b.N + 110
	for {
		_, total, err := c.api.List(ctx, client.ListOpts{States: []activity.State{activity.StateSuccess}, Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if total >= want {
			break
		}
		if _, failed, _ := c.api.List(ctx, client.ListOpts{States: []activity.State{activity.StateFailed}, Limit: 1}); failed > 0 {
			b.Fatalf("%d tasks failed", failed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "tasks/s")
	b.ReportMetric(ms(quantile(latencies, 0.5)), "dispatch_p50_ms")
	b.ReportMetric(ms(quantile(latencies, 0.99)), "dispatch_p99_ms")
	b.ReportMetric(ms(quantile(js, 0.5)), "raw_js_rtt_p50_ms")
	b.ReportMetric(ms(quantile(js, 0.99)), "raw_js_rtt_p99_ms")
	b.ReportMetric(forkRate, "raw_forkexec/s")
	b.ReportMetric(ms(quantile(fe, 0.5)), "raw_forkexec_p50_ms")
	b.ReportMetric(rate/forkRate, "tasks_per_forkexec")
	b.ReportMetric(float64(quantile(latencies, 0.5))/float64(quantile(js, 0.5)), "dispatch_p50_per_js_rtt")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d tasks, worker concurrency %d: %.0f tasks/s (%.2f× serial fork+exec %.0f/s); dispatch p50 %.2fms p99 %.2fms (%.1f× JetStream RTT p50 %.2fms)",
		b.N, concurrency, rate, rate/forkRate, forkRate, ms(quantile(latencies, 0.5)), ms(quantile(latencies, 0.99)),
		float64(quantile(latencies, 0.5))/float64(quantile(js, 0.5)), ms(quantile(js, 0.5)))
}

func sumDur(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

func readStamp(b *testing.B, dir, id string) time.Time {
	raw, err := os.ReadFile(filepath.Join(dir, id))
	if err != nil {
		b.Fatalf("stamp of %s: %v", id, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Unix(0, n)
}

// BenchmarkEndToEndGoSDK runs b.N no-op Go-SDK tasks (examples/gotasks
// "noop": runtime start, socket handshake, StartupDetails, SucceedTask)
// through a real executor and worker and reports tasks/s, first submit to
// last success.
//
//	go test -run '^$' -bench EndToEndGoSDK -benchtime 2000x ./integration/
func BenchmarkEndToEndGoSDK(b *testing.B) {
	c := newCluster(b, clusterOpts{logLevel: "info"})
	c.startWorker(workerOpts{concurrency: 8, extra: []string{"--log-level", "info"}})
	spec := activity.TaskSpec{Queue: "go", TaskID: "noop", Entrypoint: activity.Entrypoint{Task: "noop"}}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for range b.N {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := c.api.Submit(ctx, spec); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	for {
		_, done, err := c.api.List(ctx, client.ListOpts{States: []activity.State{activity.StateSuccess}, Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if done >= b.N {
			break
		}
		if _, failed, _ := c.api.List(ctx, client.ListOpts{States: []activity.State{activity.StateFailed, activity.StateUpForRetry}, Limit: 1}); failed > 0 {
			b.Fatalf("%d tasks failed", failed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "tasks/s")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d Go-SDK no-op tasks, worker concurrency 8: %.0f tasks/s (target ≥ 400/s)", b.N, rate)
}
