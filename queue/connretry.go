package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// Backoff of [ConnectRetry] between attempts: it starts at
// connectRetryMin and doubles up to connectRetryMax, with jitter.
const (
	connectRetryMin = 250 * time.Millisecond
	connectRetryMax = 10 * time.Second
)

// ConnectRetry is [Connect] for a service starting while NATS may not be
// up yet (a worker started before the broker, a broker restarting; what
// Celery calls broker_connection_retry_on_startup): while no server can be
// reached it tries again with backoff, logging each failure, until it
// connects, ctx ends, or timeout (0: no limit) has passed since its first
// attempt; then it returns the last error. An error that trying again will
// not fix (authorization refused, a bad credentials file, a TLS error) is
// returned at once.
func ConnectRetry(ctx context.Context, cfg ConnConfig, timeout time.Duration) (*Conn, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	wait := connectRetryMin
	for attempt := 1; ; attempt++ {
		nc, err := Connect(ctx, cfg)
		if err == nil || ctx.Err() != nil || !unreachable(err) {
			return nc, err
		}
		if timeout > 0 && time.Since(start)+wait > timeout {
			return nil, fmt.Errorf("%w (gave up after %d attempts in %s, --connect-timeout)", err, attempt, time.Since(start).Round(time.Millisecond))
		}
		log.Warn("nats unreachable; retrying", "url", redactURL(cfg.URL), "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect nats %s: %w (%w)", redactURL(cfg.URL), ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, connectRetryMax)
		wait += time.Duration(rand.Int64N(int64(wait) / 5)) // jitter: restarted fleets spread out
	}
}

// unreachable reports whether a connect failed for want of a server that
// answers: what waiting may fix.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &ne) && ne.Timeout())
}
