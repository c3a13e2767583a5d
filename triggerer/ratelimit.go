package triggerer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// Rate limits of polling triggers (README, "Rate-limited waits"): each
// rate key with a limit has one token bucket in the rate_limits KV bucket,
// shared by every triggerer and changed only by compare-and-set: a request
// takes a token (and, with a concurrency bound, a lease on an in-flight
// place) in one write. The bucket holds one token, refilled at rps, so
// requests are spaced 1/rps apart cluster-wide. In each triggerer one
// goroutine per key takes the tokens for the triggers waiting on it, so
// the KV traffic follows the rate, not the number of triggers.

// leaseTTL bounds how long a request holds an in-flight place when its
// triggerer dies before giving it back.
const leaseTTL = time.Minute

// rateState is a key's shared token bucket.
type rateState struct {
	Tokens float64 `json:"tokens"`
	// At is when Tokens was computed (Unix nanoseconds).
	At int64 `json:"at"`
	// Leases are the requests in flight: lease id → expiry (Unix ns).
	Leases map[string]int64 `json:"leases,omitempty"`
}

type rateRequest struct {
	ctx   context.Context
	reply chan func()
}

// rateLimiter implements trigger.Limiter over KV.
type rateLimiter struct {
	kv      queue.Bucket
	log     *slog.Logger
	onLimit func(key string)

	mu     sync.Mutex
	limits map[string]activity.RateLimit
	gates  map[string]chan rateRequest
	ctx    context.Context
	wg     sync.WaitGroup
}

func newRateLimiter(kv queue.Bucket, log *slog.Logger) *rateLimiter {
	return &rateLimiter{kv: kv, log: log, limits: map[string]activity.RateLimit{}, gates: map[string]chan rateRequest{}}
}

// run watches the limits until ctx ends; ready is closed once loaded.
func (l *rateLimiter) run(ctx context.Context, ready chan<- struct{}) error {
	l.mu.Lock()
	l.ctx = ctx
	l.mu.Unlock()
	defer l.wg.Wait()
	if err := l.kv.Follow(ctx, func() { close(ready) }, l.apply); err != nil {
		return fmt.Errorf("watch rate limits: %w", err)
	}
	return nil
}

// apply keeps a watched limit.
func (l *rateLimiter) apply(e queue.Entry) {
	enc, ok := strings.CutPrefix(e.Key(), "limit.")
	if !ok {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return
	}
	key := string(raw)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !e.IsPut() {
		delete(l.limits, key)
		return
	}
	var rl activity.RateLimit
	if json.Unmarshal(e.Value(), &rl) == nil && rl.RPS > 0 {
		l.limits[key] = rl
	}
}

func noop() {}

// Acquire implements trigger.Limiter.
func (l *rateLimiter) Acquire(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	_, limited := l.limits[key]
	gate := l.gates[key]
	if limited && gate == nil && l.ctx != nil && l.ctx.Err() == nil {
		gate = make(chan rateRequest)
		l.gates[key] = gate
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(l.ctx, key, gate)
		}()
	}
	l.mu.Unlock()
	if !limited || gate == nil {
		return noop, nil
	}
	req := rateRequest{ctx: ctx, reply: make(chan func(), 1)}
	select {
	case gate <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case release := <-req.reply:
		return release, nil
	case <-ctx.Done():
		// The gate answers anyway: give back what it hands out.
		go func() {
			if release := <-req.reply; release != nil {
				release()
			}
		}()
		return nil, ctx.Err()
	}
}

// serve hands out key's tokens to the requests, one at a time, until ctx
// ends.
func (l *rateLimiter) serve(ctx context.Context, key string, gate chan rateRequest) {
	for {
		var req rateRequest
		select {
		case <-ctx.Done():
			return
		case req = <-gate:
		}
		waited := false
		for {
			if req.ctx.Err() != nil {
				req.reply <- nil
				break
			}
			release, wait, err := l.take(ctx, key)
			if err != nil && ctx.Err() != nil {
				req.reply <- nil
				return
			}
			if err != nil {
				l.log.Warn("rate limit: take a token", "key", key, "err", err)
				wait = 100 * time.Millisecond
			}
			if release != nil {
				req.reply <- release
				break
			}
			if !waited {
				waited = true
				if l.onLimit != nil {
					l.onLimit(key)
				}
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				req.reply <- nil
				return
			case <-req.ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// take tries to take a token of key's bucket: it returns the release of
// the request, or how long to wait before trying again.
func (l *rateLimiter) take(ctx context.Context, key string) (release func(), wait time.Duration, err error) {
	l.mu.Lock()
	rl, ok := l.limits[key]
	l.mu.Unlock()
	if !ok {
		return noop, 0, nil
	}
	lease := ""
	if rl.Concurrent > 0 {
		lease = uuid.NewString()
	}
	var granted bool
	_, err = queue.UpdateCAS(ctx, l.kv, queue.RateStateKey(key), func(old []byte) ([]byte, error) {
		granted, wait = false, 0
		now := time.Now().UnixNano()
		st := rateState{Tokens: 1, At: now}
		if old != nil {
			if err := json.Unmarshal(old, &st); err != nil {
				st = rateState{Tokens: 1, At: now}
			}
		}
		st.Tokens = min(1, st.Tokens+rl.RPS*float64(now-st.At)/1e9)
		st.At = now
		for id, exp := range st.Leases {
			if exp < now {
				delete(st.Leases, id)
			}
		}
		switch {
		case st.Tokens < 1:
			wait = time.Duration((1 - st.Tokens) / rl.RPS * 1e9)
			return nil, errNoToken
		case rl.Concurrent > 0 && len(st.Leases) >= rl.Concurrent:
			wait = 10 * time.Millisecond
			return nil, errNoToken
		}
		st.Tokens--
		if lease != "" {
			if st.Leases == nil {
				st.Leases = map[string]int64{}
			}
			st.Leases[lease] = now + int64(leaseTTL)
		}
		granted = true
		return json.Marshal(st)
	})
	if errors.Is(err, errNoToken) {
		return nil, max(wait, time.Millisecond), nil
	}
	if err != nil || !granted {
		return nil, 0, err
	}
	if lease == "" {
		return noop, 0, nil
	}
	return func() { l.giveBack(key, lease) }, 0, nil
}

var errNoToken = errors.New("no token")

// giveBack ends a request's lease.
func (l *rateLimiter) giveBack(key, lease string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := queue.UpdateCAS(ctx, l.kv, queue.RateStateKey(key), func(old []byte) ([]byte, error) {
		var st rateState
		if old == nil || json.Unmarshal(old, &st) != nil {
			return nil, errNoToken
		}
		if _, ok := st.Leases[lease]; !ok {
			return nil, errNoToken
		}
		delete(st.Leases, lease)
		return json.Marshal(st)
	})
	if err != nil && !errors.Is(err, errNoToken) {
		l.log.Warn("rate limit: give back a lease (it expires)", "key", key, "err", err)
	}
}
