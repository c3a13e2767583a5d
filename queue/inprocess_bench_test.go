package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/queue"
	"golang.org/x/sync/errgroup"
)

// BenchmarkKVUpdateConn compares KV compare-and-sets (the executor's
// per-task writes, 16 records at once) over TCP loopback and in process,
// in CPU time (user + system) per update of this process, which holds
// both ends.
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
			val := []byte(fmt.Sprintf(`{"state":"running","pad":%q}`, make([]byte, 800)))
			// 16 records written at once, as the executor's handlers write.
			const writers = 16
			revs := make([]uint64, writers)
			keys := make([]string, writers)
			for i := range writers {
				seq++
				keys[i] = fmt.Sprintf("k%s%d", tc.name, seq)
				if revs[i], err = kv.Create(ctx, keys[i], []byte(`{"state":"queued"}`)); err != nil {
					b.Fatal(err)
				}
			}
			var before, after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			var g errgroup.Group
			for i := range writers {
				g.Go(func() error {
					for n := i; n < b.N; n += writers {
						rev, err := kv.Update(ctx, keys[i], val, revs[i])
						if err != nil {
							return err
						}
						revs[i] = rev
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
