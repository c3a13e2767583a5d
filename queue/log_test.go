package queue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/taskwire/taskwire/queue"
)

func writeLines(t *testing.T, c *queue.Client, tiID string, try int, lines ...string) {
	t.Helper()
	w := queue.NewLogWriter(c, tiID, try)
	for _, l := range lines {
		if err := w.Write([]byte(l + "\n")); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := w.Close(testContext(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Write([]byte("late")); !errors.Is(err, queue.ErrLogWriterClosed) {
		t.Fatalf("Write after Close = %v, want ErrLogWriterClosed", err)
	}
}

func lineStrings(lines []queue.LogLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, fmt.Sprintf("%d:%s", l.Try, l.Data))
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLogsWriteRead(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	writeLines(t, c, "ti1", 1, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	writeLines(t, c, "ti1", 2, `{"n":4}`)
	writeLines(t, c, "ti2", 1, `{"other":true}`)

	tests := []struct {
		name string
		ti   string
		try  int
		want []string
	}{
		{"one_try", "ti1", 1, []string{`1:{"n":1}`, `1:{"n":2}`, `1:{"n":3}`}},
		{"all_tries", "ti1", 0, []string{`1:{"n":1}`, `1:{"n":2}`, `1:{"n":3}`, `2:{"n":4}`}},
		{"other_task", "ti2", 0, []string{`1:{"other":true}`}},
		{"none", "ti3", 0, nil},
		{"no_such_try", "ti1", 7, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := c.ReadLogs(ctx, tt.ti, tt.try)
			if err != nil {
				t.Fatalf("ReadLogs: %v", err)
			}
			if got := lineStrings(lines); !equal(got, tt.want) {
				t.Fatalf("ReadLogs(%s, %d) = %q, want %q", tt.ti, tt.try, got, tt.want)
			}
		})
	}
	if _, err := c.ReadLogs(ctx, "bad.id", 0); err == nil {
		t.Fatal("ReadLogs accepted a dotted id")
	}
}

func TestLogWriterBatchesLargeOutput(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	const n = 3000 // ~300KiB: several 64KiB messages
	var want []string
	w := queue.NewLogWriter(c, "big", 1)
	for i := range n {
		line := fmt.Sprintf(`{"i":%d,"pad":"%090d"}`, i, 0)
		want = append(want, "1:"+line)
		if err := w.Write([]byte(line)); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	lines, err := c.ReadLogs(ctx, "big", 1)
	if err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	if got := lineStrings(lines); !equal(got, want) {
		t.Fatalf("ReadLogs returned %d lines, want %d in order", len(got), len(want))
	}
	st, err := c.JetStream().Stream(ctx, queue.StreamLogs)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if msgs := info.State.Msgs; msgs < 4 || msgs > 10 {
		t.Fatalf("%d lines went out in %d messages, want 4..10 batches", n, msgs)
	}
}

// Flush publishes what is buffered (without waiting); Close waits for the
// acknowledgements and publishes what came after, in order; Flush after
// Close does nothing.
func TestLogWriterFlush(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	w := queue.NewLogWriter(c, "flushed", 1)
	for i := range 3 {
		if err := w.Write(fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
	}
	if err := w.Write([]byte(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	lines, err := c.ReadLogs(ctx, "flushed", 1)
	if got := lineStrings(lines); err != nil || !equal(got, []string{`1:{"n":0}`, `1:{"n":1}`, `1:{"n":2}`, `1:{"n":3}`}) {
		t.Fatalf("read back %v (%v)", got, err)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
}

func TestFollowLogs(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	writeLines(t, c, "ti1", 1, `{"n":1}`, `{"n":2}`)

	followCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan queue.LogLine, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.FollowLogs(followCtx, "ti1", 0, func(l queue.LogLine) error {
			got <- l
			return nil
		})
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-got:
			return fmt.Sprintf("%d:%s", l.Try, l.Data)
		case <-ctx.Done():
			t.Fatal("no log line")
			return ""
		}
	}
	for _, want := range []string{`1:{"n":1}`, `1:{"n":2}`} {
		if l := next(); l != want {
			t.Fatalf("followed %s, want %s", l, want)
		}
	}
	if err := c.PublishLogs(ctx, "ti1", 2, []byte("{\"n\":3}\n{\"n\":4}")); err != nil {
		t.Fatalf("PublishLogs: %v", err)
	}
	for _, want := range []string{`2:{"n":3}`, `2:{"n":4}`} {
		if l := next(); l != want {
			t.Fatalf("followed %s, want %s", l, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("FollowLogs = %v, want context.Canceled", err)
		}
	case <-ctx.Done():
		t.Fatal("FollowLogs did not return after cancel")
	}
}

func TestFollowLogsStopsOnHandlerError(t *testing.T) {
	t.Parallel()
	c := newClient(t, queue.Config{})
	ctx := testContext(t)
	writeLines(t, c, "ti1", 1, `{"n":1}`)
	errStop := errors.New("stop")
	err := c.FollowLogs(ctx, "ti1", 1, func(queue.LogLine) error { return errStop })
	if !errors.Is(err, errStop) {
		t.Fatalf("FollowLogs = %v, want errStop", err)
	}
}
