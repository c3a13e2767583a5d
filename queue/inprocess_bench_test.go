package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/queue"
)

// BenchmarkKVUpdateConn compares a KV compare-and-set round trip (the
// executor's per-task write) over TCP loopback and in process, in CPU time
// (user + system) per update of this process, which holds both ends.
func BenchmarkKVUpdateConn(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	emb, err := queue.StartEmbedded(queue.EmbeddedConfig{Port: -1, DataDir: b.TempDir(), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer emb.Shutdown()
	seq := 0
	for _, tc := range []struct {
		name string
		in   queue.InProcessServer
	}{{"tcp", nil}, {"inprocess", emb.Server()}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			nc, err := queue.Connect(ctx, queue.ConnConfig{URL: emb.ClientURL(), Name: tc.name, InProcess: tc.in, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			q, err := queue.New(ctx, nc, queue.Config{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			kv := q.Bucket(queue.BucketTaskInstances)
			seq++
			key := fmt.Sprintf("k%s%d", tc.name, seq)
			rev, err := kv.Create(ctx, key, []byte(`{"state":"queued"}`))
			if err != nil {
				b.Fatal(err)
			}
			val := []byte(fmt.Sprintf(`{"state":"running","pad":%q}`, make([]byte, 800)))
			var before, after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			for range b.N {
				if rev, err = kv.Update(ctx, key, val, rev); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
