// Package logstorm keeps a storm of one warning from flooding a log: a
// process that is overloaded (a thousand workers in one process on a
// saturated machine: every heartbeat, registry write and …/run call
// timing out) would otherwise write the same line thousands of times.
//
// A Handler passes records below Warn through. Of the records at Warn and
// above with the same level and message (whatever their attributes, so
// the same warning of a thousand workers is one kind), it passes the first
// Burst in each Window; the others are counted, not written. The first
// record of a kind after a window in which some were dropped carries
// suppressed=N (how many were dropped) and suppressed_for (the window), so
// the log keeps one line per window with a count, not one per event. The
// record that starts the suppression says so (suppressing=true).
package logstorm

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Defaults of Config.
const (
	BurstDefault  = 10
	WindowDefault = 10 * time.Second
	// maxKinds bounds the kinds remembered; past it the oldest windows
	// are forgotten first.
	maxKinds = 1024
)

// Config configures New.
type Config struct {
	// Burst is how many records of one kind pass in a Window; default
	// BurstDefault.
	Burst int
	// Window is the period Burst counts over; default WindowDefault.
	Window time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// WithDefaults fills the unset fields.
func (c Config) WithDefaults() Config {
	if c.Burst <= 0 {
		c.Burst = BurstDefault
	}
	if c.Window <= 0 {
		c.Window = WindowDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

type kind struct {
	level slog.Level
	msg   string
}

type window struct {
	start             time.Time
	passed, dropped   int
	droppedLastWindow int
}

// state is shared by a Handler and those WithAttrs and WithGroup make.
type state struct {
	cfg     Config
	mu      sync.Mutex
	windows map[kind]*window
	dropped int64
}

// Handler is the storm-limiting slog.Handler.
type Handler struct {
	next slog.Handler
	s    *state
}

// New returns a Handler writing to next.
func New(next slog.Handler, cfg Config) *Handler {
	return &Handler{next: next, s: &state{cfg: cfg.WithDefaults(), windows: map[kind]*window{}}}
}

// Dropped is how many records were not written so far.
func (h *Handler) Dropped() int64 {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.dropped
}

// Enabled is next's.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle writes r unless it is one too many of its kind in this window.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	pass, suppressing, before := h.s.admit(kind{r.Level, r.Message})
	if !pass {
		return nil
	}
	if before > 0 || suppressing {
		r = r.Clone()
		if before > 0 {
			r.AddAttrs(slog.Int("suppressed", before), slog.Duration("suppressed_for", h.s.cfg.Window))
		}
		if suppressing {
			r.AddAttrs(slog.Bool("suppressing", true))
		}
	}
	return h.next.Handle(ctx, r)
}

// admit counts a record of kind k; pass tells whether to write it,
// suppressing that it is the last written in its window while more come,
// before how many of k the previous window dropped (reported once).
func (s *state) admit(k kind) (pass, suppressing bool, before int) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[k]
	if w == nil || now.Sub(w.start) >= s.cfg.Window {
		carried := 0
		if w != nil {
			carried = w.dropped + w.droppedLastWindow
		}
		if w == nil && len(s.windows) >= maxKinds {
			s.evictOldest()
		}
		w = &window{start: now, droppedLastWindow: carried}
		s.windows[k] = w
	}
	if w.passed >= s.cfg.Burst {
		w.dropped++
		s.dropped++
		return false, false, 0
	}
	w.passed++
	before, w.droppedLastWindow = w.droppedLastWindow, 0
	return true, w.passed == s.cfg.Burst, before
}

func (s *state) evictOldest() {
	var oldest kind
	var at time.Time
	first := true
	for k, w := range s.windows {
		if first || w.start.Before(at) {
			oldest, at, first = k, w.start, false
		}
	}
	delete(s.windows, oldest)
}

// WithAttrs shares the limits with h.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), s: h.s}
}

// WithGroup shares the limits with h.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), s: h.s}
}
