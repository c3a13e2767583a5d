package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// Timers is the triggerer's cost of holding timers.
type Timers struct {
	// Timers is the number of datetime triggers, due in an hour, held.
	Timers int `json:"timers"`
	// RSSMiB is the triggerer process's resident set once it held them.
	RSSMiB float64 `json:"rss_mib"`
	// ClaimsPerSecond is Timers over the time from the first publish to
	// the triggerer holding them all.
	ClaimsPerSecond float64 `json:"claims_per_s"`
	// Lateness is fired_at − moment of LateTimers more timers due over
	// LateSpread while it held them (both times on this machine's clock).
	Lateness Latency `json:"lateness"`
}

// Bounds of the timer phase's waits.
const (
	childStartTimeout = 30 * time.Second
	publishTimeout    = 2 * time.Minute
	// publishWindow bounds the triggers awaiting their acknowledgement.
	publishWindow = 1024
	holdTimeout   = 5 * time.Minute
	firedTimeout  = time.Minute // after the last late timer is due
)

// timers measures a triggerer child holding n timers: a fresh embedded NATS
// server under dir (no executor consumes the events: the bench does), a
// triggerer child with capacity n+late, n datetime triggers due in an hour,
// its RSS once it holds them, then late more due over spread and how late
// they fire. done counts held timers, then, after lateBegins is called,
// fired ones.
func timers(ctx context.Context, cfg Config, dir string, n int, done *atomic.Int64, lateBegins func()) (Timers, error) {
	late, spread := cfg.LateTimers, cfg.LateSpread
	emb, err := queue.StartEmbedded(queue.EmbeddedConfig{
		Host: "127.0.0.1", Port: -1, DataDir: filepath.Join(dir, "nats"), Logger: cfg.Logger.With("component", "nats"),
	})
	if err != nil {
		return Timers{}, fmt.Errorf("start embedded nats: %w", err)
	}
	defer emb.Shutdown()
	nc, err := queue.Connect(ctx, queue.ConnConfig{URL: emb.ClientURL(), Name: "taskwire-bench", Logger: cfg.Logger})
	if err != nil {
		return Timers{}, err
	}
	defer nc.Close()
	q, err := queue.New(ctx, nc, queue.Config{Logger: cfg.Logger})
	if err != nil {
		return Timers{}, err
	}
	events, err := q.EventConsumer(ctx)
	if err != nil {
		return Timers{}, err
	}

	child, err := startTriggererChild(ctx, cfg.Self, emb.ClientURL(), n+late)
	if err != nil {
		return Timers{}, err
	}
	defer child.kill()

	start := time.Now()
	hour := start.Add(time.Hour)
	if err := publishTriggers(ctx, q, "hold", n, func(int) time.Time { return hour }); err != nil {
		return Timers{}, err
	}
	if err := child.waitHeld(ctx, n, done); err != nil {
		return Timers{}, err
	}
	claimed := time.Since(start)
	rss, err := rssOf(child.cmd.Process.Pid)
	if err != nil {
		return Timers{}, err
	}

	// Lateness while holding n: late timers due over spread, starting far
	// enough out for them to be published and claimed first.
	done.Store(0)
	lateBegins()
	lead := time.Second + time.Duration(late)*200*time.Microsecond
	base := time.Now().Add(lead)
	moment := func(i int) time.Time { return base.Add(time.Duration(i) * spread / time.Duration(late)) }
	if err := publishTriggers(ctx, q, "late", late, moment); err != nil {
		return Timers{}, err
	}
	lateness := make([]time.Duration, 0, late)
	deadline := base.Add(spread + firedTimeout)
	for len(lateness) < late {
		if time.Now().After(deadline) {
			return Timers{}, fmt.Errorf("%d of %d timers fired by %s after the last was due", len(lateness), late, firedTimeout)
		}
		if err := ctx.Err(); err != nil {
			return Timers{}, err
		}
		select {
		case <-child.exited:
			return Timers{}, child.exitError("triggerer child exited")
		default:
		}
		batch, err := events.Fetch(min(1000, late-len(lateness)), time.Second)
		if err != nil {
			return Timers{}, fmt.Errorf("fetch events: %w", err)
		}
		for m := range batch.All() {
			_ = m.Ack()
			ev, err := activity.DecodeTriggerEvent(m.Data())
			if err != nil {
				return Timers{}, err
			}
			num, ok := strings.CutPrefix(strings.TrimSuffix(ev.TriggerID, ".1"), "late-")
			i, err := strconv.Atoi(num)
			if !ok || err != nil {
				return Timers{}, fmt.Errorf("unexpected event of trigger %s", ev.TriggerID)
			}
			if ev.Error != "" {
				return Timers{}, fmt.Errorf("trigger %s failed: %s", ev.TriggerID, ev.Error)
			}
			lateness = append(lateness, ev.FiredAt.Sub(moment(i)))
			done.Add(1)
		}
		if err := batch.Err(); err != nil && !errors.Is(err, queue.ErrTimeout) {
			return Timers{}, fmt.Errorf("fetch events: %w", err)
		}
	}
	return Timers{Timers: n, RSSMiB: float64(rss) / (1 << 20), ClaimsPerSecond: float64(n) / claimed.Seconds(),
		Lateness: summarize(lateness)}, nil
}

// publishTriggers publishes count datetime triggers named prefix-i.1, due
// at moment(i), and waits until JetStream has them all.
func publishTriggers(ctx context.Context, q *queue.Client, prefix string, count int, moment func(i int) time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	now := time.Now().UTC()
	var encodeErr error
	err := q.PublishTriggers(ctx, count, publishWindow, func(i int) (string, []byte) {
		t := activity.Trigger{ID: fmt.Sprintf("%s-%d.1", prefix, i), Classpath: "datetime", Kind: "datetime",
			Kwargs: map[string]any{"moment": moment(i).UTC().Format(time.RFC3339Nano)},
			TIID:   fmt.Sprintf("%s-%d", prefix, i), Try: 1, DeferredAt: now}
		data, err := json.Marshal(t)
		if err != nil && encodeErr == nil {
			encodeErr = err
		}
		return t.ID, data
	}, nil)
	return errors.Join(encodeErr, err)
}

// triggererChild is the bench binary in ModeTriggerer. It reports on
// stdout, and exits when its stdin closes.
type triggererChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer // read only after Wait

	held    atomic.Int64
	changed chan struct{} // a value when held changed
	ready   chan struct{} // closed on "ready"
	exited  chan struct{} // closed when stdout ends
	killed  bool          // or waited for
}

// startTriggererChild starts the child and waits until its triggerer runs.
func startTriggererChild(ctx context.Context, self, natsURL string, capacity int) (*triggererChild, error) {
	c := &triggererChild{changed: make(chan struct{}, 1), ready: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = selfCommand(ctx, self, ModeTriggerer, "--nats-url", natsURL, "--capacity", strconv.Itoa(capacity))
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start triggerer child: %w", err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == StatusReady {
				close(c.ready)
				continue
			}
			if s, ok := strings.CutPrefix(line, StatusHeld); ok {
				if n, err := strconv.Atoi(s); err == nil {
					c.held.Store(int64(n))
					select {
					case c.changed <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	select {
	case <-c.ready:
		return c, nil
	case <-c.exited:
		return nil, c.exitError("triggerer child exited before it was ready")
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	case <-time.After(childStartTimeout):
		c.kill()
		return nil, fmt.Errorf("triggerer child not ready after %s", childStartTimeout)
	}
}

// waitHeld waits until the child holds n triggers.
func (c *triggererChild) waitHeld(ctx context.Context, n int, done *atomic.Int64) error {
	timeout := time.NewTimer(holdTimeout)
	defer timeout.Stop()
	for {
		held := c.held.Load()
		done.Store(held)
		if held >= int64(n) {
			return nil
		}
		select {
		case <-c.changed:
		case <-c.exited:
			return c.exitError(fmt.Sprintf("triggerer child exited holding %d of %d triggers", c.held.Load(), n))
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("triggerer child holds %d of %d triggers after %s", c.held.Load(), n, holdTimeout)
		}
	}
}

// exitError waits for the exited child and says how it ended.
func (c *triggererChild) exitError(what string) error {
	err := c.cmd.Wait()
	c.killed = true // nothing left to kill
	return fmt.Errorf("%s: %v: %s", what, err, strings.TrimSpace(c.stderr.String()))
}

// kill ends the child: its NATS server is thrown away, so handing its
// triggers back would only cost time.
func (c *triggererChild) kill() {
	if c.killed {
		return
	}
	c.killed = true
	_ = c.stdin.Close()
	_ = c.cmd.Process.Kill()
	<-c.exited
	_ = c.cmd.Wait()
}

// rssOf reads a process's resident set size in bytes from /proc.
func rssOf(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("rss of %d: no VmRSS in /proc/%d/status", pid, pid)
}
