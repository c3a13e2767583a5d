package queue_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	tests := []struct {
		name string
		in   queue.Limits
		want queue.Limits
	}{
		{"shares_of_budget", queue.Limits{Budget: 100 * mb},
			queue.Limits{Budget: 100 * mb, Logs: 25 * mb, LogPerTry: 25 * mb / 4, Queue: 5 * mb, DeadLetter: 5 * mb, XCom: 10 * mb, Small: 1 * mb}},
		{"per_try_capped", queue.Limits{Budget: 4000 * mb},
			queue.Limits{Budget: 4000 * mb, Logs: 1000 * mb, LogPerTry: queue.LogPerTryDefault, Queue: 200 * mb, DeadLetter: 200 * mb, XCom: 400 * mb, Small: 40 * mb}},
		// Budget/100 rounds down; small shares are floored at 1 MiB.
		{"tiny_budget_floors", queue.Limits{Budget: 10 * mb},
			queue.Limits{Budget: 10 * mb, Logs: 10 * mb / 100 * 25, LogPerTry: 10 * mb / 100 * 25 / 4, Queue: 1 * mb, DeadLetter: 1 * mb, XCom: 1 * mb, Small: 1 * mb}},
		{"none_kept", queue.Limits{Budget: 100 * mb, Logs: -1, LogPerTry: -1, XCom: 7},
			queue.Limits{Budget: 100 * mb, Logs: -1, LogPerTry: -1, Queue: 5 * mb, DeadLetter: 5 * mb, XCom: 7, Small: 1 * mb}},
		{"no_budget", queue.Limits{},
			queue.Limits{Budget: queue.BudgetDefault, Logs: queue.BudgetDefault / 100 * 25, LogPerTry: queue.LogPerTryDefault,
				Queue: queue.BudgetDefault / 100 * 5, DeadLetter: queue.BudgetDefault / 100 * 5, XCom: queue.BudgetDefault / 100 * 10, Small: queue.BudgetDefault / 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.in.WithDefaults(); got != tc.want {
				t.Errorf("WithDefaults(%+v)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

// A try's log past its limit is cut with a marker line and a closing line
// with the counts; the writer reports no error for it.
func TestLogWriterTruncatesAtPerTryLimit(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{Limits: queue.Limits{LogPerTry: 1000}})
	if got := c.LogPerTryLimit(); got != 1000 {
		t.Fatalf("LogPerTryLimit = %d", got)
	}
	w := queue.NewLogWriter(c, "ti1", 1)
	line := `{"event":"` + strings.Repeat("a", 88) + `"}` // 100 bytes
	for range 50 {
		if err := w.Write([]byte(line)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := w.Close(testContext(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines, err := c.ReadLogs(testContext(t), "ti1", 1)
	if err != nil {
		t.Fatal(err)
	}
	// 9 lines of 101 bytes fit in 1000, then the marker and the counts.
	if len(lines) != 11 {
		t.Fatalf("%d lines, want 9 kept + marker + counts:\n%s", len(lines), strings.Join(lineStrings(lines), "\n"))
	}
	if !strings.Contains(string(lines[9].Data), "log truncated: this try's log reached its limit of 1000 bytes") {
		t.Errorf("marker = %s", lines[9].Data)
	}
	if !strings.Contains(string(lines[10].Data), `"dropped_lines":41`) {
		t.Errorf("closing line = %s", lines[10].Data)
	}
	// A bound client (a worker) takes the limit from the stream.
	bound, err := queue.New(testContext(t), c.Conn(), queue.Config{Bind: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := bound.LogPerTryLimit(); got != 1000 {
		t.Errorf("bound client's per-try limit = %d, want the executor's 1000", got)
	}
}

func TestEachLogTailAndPurge(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	var want []string
	for i := range 300 {
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	writeLines(t, c, "ti1", 1, want[:150]...)
	writeLines(t, c, "ti1", 2, want[150:]...)
	writeLines(t, c, "ti2", 1, `{"other":1}`)

	var got []string
	err := c.EachLog(ctx, "ti1", 0, queue.LogReadOpts{Tail: 3}, func(l queue.LogLine) error {
		got = append(got, fmt.Sprintf("%d:%s", l.Try, l.Data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{`2:{"n":297}`, `2:{"n":298}`, `2:{"n":299}`}; !equal(got, w) {
		t.Errorf("tail 3 = %q, want %q", got, w)
	}
	n := 0
	stop := errors.New("stop")
	err = c.EachLog(ctx, "ti1", 1, queue.LogReadOpts{}, func(queue.LogLine) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("EachLog with fn failing = %v, want its error", err)
	}

	if _, err := c.PurgeLogs(ctx, queue.PurgeLogsOpts{}); !errors.Is(err, queue.ErrPurgeOpts) {
		t.Errorf("purge with nothing chosen = %v", err)
	}
	if n, err := c.PurgeLogs(ctx, queue.PurgeLogsOpts{OlderThan: time.Hour}); err != nil || n != 0 {
		t.Errorf("purge older than 1h = %d, %v; want 0", n, err)
	}
	if n, err := c.PurgeLogs(ctx, queue.PurgeLogsOpts{TaskInstanceID: "ti1"}); err != nil || n == 0 {
		t.Errorf("purge ti1 = %d, %v", n, err)
	}
	if lines, _ := c.ReadLogs(ctx, "ti1", 0); len(lines) != 0 {
		t.Errorf("ti1 has %d lines after its purge", len(lines))
	}
	if lines, _ := c.ReadLogs(ctx, "ti2", 0); len(lines) != 1 {
		t.Errorf("ti2 has %d lines after ti1's purge, want 1", len(lines))
	}
	if n, err := c.PurgeLogs(ctx, queue.PurgeLogsOpts{OlderThan: time.Millisecond}); err != nil || n != 1 {
		t.Errorf("purge older than 1ms = %d, %v; want 1", n, err)
	}
}

// Limits larger than the server's store (an external NATS smaller than the
// budget) are halved until they fit, not refused.
func TestLimitsFitASmallStore(t *testing.T) {
	t.Parallel()
	s := natstest.RunServerWith(t, func(o *server.Options) { o.JetStreamMaxStore = 64 << 20 })
	// No budget given and none in the account: BudgetDefault (8 GiB).
	c, err := queue.New(testContext(t), natstest.Connect(t, s), queue.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New with a budget over the store: %v", err)
	}
	info, err := c.JetStream().Stream(testContext(t), queue.StreamLogs)
	if err != nil {
		t.Fatal(err)
	}
	if mb := info.CachedInfo().Config.MaxBytes; mb <= 0 || mb > 64<<20 {
		t.Errorf("LOGS max bytes %d, want a limit that fits 64 MiB", mb)
	}
}
