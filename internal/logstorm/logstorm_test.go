package logstorm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// A storm of one warning from a thousand loggers (as a thousand workers
// in one process log) is Burst lines per window, the last saying it
// suppresses, then one line with the count; other warnings and infos
// pass meanwhile.
func TestStormIsOneLinePerWindowWithACount(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{now: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	h := New(slog.NewTextHandler(&buf, nil), Config{Burst: 3, Window: 10 * time.Second, Now: c.Now})
	log := slog.New(h)
	for i := range 1000 {
		log.With("worker", i).Warn("heartbeat failed", "err", "context deadline exceeded")
	}
	log.Warn("another warning")
	log.Info("an info")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 3 of the storm and 2 others:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[2], "suppressing=true") || strings.Contains(lines[1], "suppressing") {
		t.Errorf("the third line should say it suppresses, the second not:\n%s", buf.String())
	}
	if h.Dropped() != 997 {
		t.Errorf("dropped %d, want 997", h.Dropped())
	}
	buf.Reset()
	c.advance(11 * time.Second)
	log.With("worker", 5).Warn("heartbeat failed", "err", "context deadline exceeded")
	if got := buf.String(); !strings.Contains(got, "suppressed=997") || !strings.Contains(got, "worker=5") {
		t.Errorf("the first line of the next window should carry the count: %q", got)
	}
	buf.Reset()
	log.Warn("heartbeat failed")
	if strings.Contains(buf.String(), "suppressed=") {
		t.Errorf("the count is reported once: %q", buf.String())
	}
	if err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelError, "x", 0)); err != nil {
		t.Fatal(err)
	}
}
