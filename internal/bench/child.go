package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/triggerer"
)

// Lines ModeTriggerer writes on stdout.
const (
	// StatusReady is written once the triggerer has started.
	StatusReady = "ready"
	// StatusHeld, followed by a number, is written whenever the number of
	// triggers held changes.
	StatusHeld = "held "
)

// heldPollInterval is how often the triggerer child looks at how many
// triggers it holds.
const heldPollInterval = 10 * time.Millisecond

// TriggererChildConfig configures RunTriggererChild.
type TriggererChildConfig struct {
	// NATSURL is the server's URL (required).
	NATSURL string
	// Capacity is the triggerer's capacity (required).
	Capacity int
	// Logger; default one that discards.
	Logger *slog.Logger
}

// RunTriggererChild is ModeTriggerer: it runs a triggerer, wired as
// cmd/triggerer wires it, writes StatusReady and then StatusHeld lines on
// stdout, and returns when ctx is done or stdin ends (the bench is gone).
func RunTriggererChild(ctx context.Context, cfg TriggererChildConfig, stdin io.Reader, stdout io.Writer) error {
	if cfg.NATSURL == "" || cfg.Capacity < 1 {
		return fmt.Errorf("%w: triggerer child needs a NATS URL and a capacity", ErrConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The goroutine ends with stdin, at the latest when the process exits.
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()

	nc, err := queue.Connect(ctx, queue.ConnConfig{URL: cfg.NATSURL, Name: "taskwire-triggerer", Logger: log})
	if err != nil {
		return err
	}
	defer nc.Close()
	q, err := queue.New(ctx, nc, queue.Config{Logger: log, Limits: benchLimits})
	if err != nil {
		return err
	}
	tr, err := triggerer.New(triggerer.Config{Queue: q, Capacity: cfg.Capacity, Logger: log})
	if err != nil {
		return err
	}
	if err := tr.Start(ctx); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, StatusReady); err != nil {
		return err
	}
	t := time.NewTicker(heldPollInterval)
	defer t.Stop()
	last := -1
	for {
		select {
		case <-ctx.Done():
			// A second to hand triggers back, no more: the bench throws
			// its NATS server away.
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = tr.Stop(sctx)
			return nil
		case <-t.C:
			if n := tr.Held(); n != last {
				if _, err := fmt.Fprintf(stdout, "%s%d\n", StatusHeld, n); err != nil {
					return err
				}
				last = n
			}
		}
	}
}
