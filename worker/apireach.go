package worker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/taskwire/taskwire/execution"
)

// Reaching the Execution API. A worker can lose the executor's HTTP API
// while it still reaches NATS (a firewall rule, a proxy down, a partition
// between two networks). Two things must then hold:
//
//   - No split brain. The executor fails a running try whose heartbeats
//     stopped for its zombie threshold and starts the next try elsewhere.
//     So a worker kills a try none of whose heartbeats reached the executor
//     for apiLimit of that threshold (the threshold less the kill grace
//     and a margin): the try is dead before the executor may start the
//     next one. The executor says its threshold in the …/run answer; the
//     limit counts from when the last accepted heartbeat (or …/run) was
//     sent, which is before the executor stamped it, on the worker's own
//     monotonic clock (no clock sync needed).
//   - No black hole. A worker that cannot reach the API stops pulling (an
//     activity it pulled could not start, and would wait for a redelivery
//     instead of running on a worker beside it), probes GET
//     /execution/health every apiProbeInterval, and pulls again once it
//     answers. Its registry entry says "api-unreachable" meanwhile. An
//     idle worker, which calls nothing, probes once per heartbeat
//     interval, so it finds out before it pulls.

// zombieThresholdAssumed is the executor's zombie threshold when its …/run
// answer does not say (the executor's default).
const zombieThresholdAssumed = 30 * time.Second

// apiMarginMin is the least margin between the end of the worker's kill
// and the executor's zombie threshold; the margin is a tenth of the
// threshold when that is more.
const apiMarginMin = 250 * time.Millisecond

// apiProbeInterval is how often a worker that lost the API probes it.
const apiProbeInterval = time.Second

// apiProbeTimeout bounds one probe.
const apiProbeTimeout = 5 * time.Second

// APIUnreachableError is the cause with which a try is killed when none of
// its heartbeats reached the executor for Limit: the executor may fail it
// as a zombie after Threshold and start the next try. Its process group
// gets SIGTERM, then SIGKILL after Grace (the kill grace, at most a sixth
// of Threshold).
type APIUnreachableError struct {
	Limit, Threshold, Grace time.Duration
}

func (e *APIUnreachableError) Error() string {
	return fmt.Sprintf("no heartbeat reached the Execution API for %s (the executor's zombie threshold is %s)", e.Limit, e.Threshold)
}

// apiLimit returns, for the executor's zombie threshold z, how long a try
// may go without an accepted heartbeat and the kill grace to kill it
// with: z less a margin of max(z/10, 250ms) less the grace, which is the
// worker's kill grace cut to z/6 — 22s and 5s for the defaults (30s, 5s);
// 2.2s and 500ms for 3s and a kill grace of 1s.
func (w *Worker) apiLimit(log *slog.Logger, z time.Duration) (limit, grace time.Duration) {
	if z <= 0 {
		z = zombieThresholdAssumed
	}
	grace = min(w.cfg.KillGrace, z/6)
	limit = max(z/2, z-max(apiMarginMin, z/10)-grace)
	if limit < 2*w.cfg.HeartbeatInterval {
		log.Warn("heartbeat interval too long for the executor's zombie threshold: one lost heartbeat may kill a try",
			"zombie_threshold", z, "heartbeat_interval", w.cfg.HeartbeatInterval, "limit", limit)
	}
	return limit, grace
}

// apiReach says whether the Execution API answers, as the worker's last
// calls found.
type apiReach struct {
	mu      sync.Mutex
	down    bool
	since   time.Time
	lastErr string
	up      chan struct{} // closed while reachable
	wake    chan struct{} // cap 1: start probing
	lastOK  time.Time     // the last call that reached it (monotonic)
}

// quietFor is how long ago a call last reached the API.
func (a *apiReach) quietFor() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return time.Since(a.lastOK)
}

func newAPIReach() *apiReach {
	up := make(chan struct{})
	close(up)
	return &apiReach{up: up, wake: make(chan struct{}, 1), lastOK: time.Now()}
}

// state reports whether the API is unreachable, since when and why.
func (a *apiReach) state() (down bool, since time.Time, lastErr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.down, a.since, a.lastErr
}

// upC is closed while the API is reachable (and when it comes back).
func (a *apiReach) upC() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.up
}

// note records the result of a call to the API and reports whether that
// changed its state. Errors that say the API answered (4xx) count as
// reached.
func (a *apiReach) note(err error) (changed, down bool) {
	unreachable := execution.Unreachable(err)
	if err != nil && !unreachable {
		// The API answered (a refusal): reachable.
		err = nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		a.lastOK = time.Now()
	}
	switch {
	case err == nil && a.down:
		a.down = false
		close(a.up)
		return true, false
	case unreachable && !a.down:
		a.down, a.since, a.lastErr = true, time.Now().UTC(), err.Error()
		a.up = make(chan struct{})
		select {
		case a.wake <- struct{}{}:
		default:
		}
		return true, true
	case unreachable:
		a.lastErr = err.Error()
	}
	return false, a.down
}

// noteAPI records the result of a call to the Execution API: the first
// failure to reach it stops the pulls (and starts the probes), the first
// success after that resumes them; the registry entry is rewritten at once.
func (w *Worker) noteAPI(err error) {
	changed, down := w.api.note(err)
	if !changed {
		return
	}
	if down {
		w.log.Warn("execution API unreachable: stopped pulling until it answers again", "err", err)
	} else {
		_, since, _ := w.api.state()
		w.log.Info("execution API reachable again: pulling", "unreachable_for", time.Since(since).Round(time.Millisecond))
	}
	select {
	case w.regKick <- struct{}{}:
	default:
	}
}

// probeLoop probes the API every apiProbeInterval while it is
// unreachable, and once per HeartbeatInterval when nothing else said it
// answers (an idle worker calls nothing: without this it would learn
// that it lost the API only from the next activity's …/run, and would
// show as live meanwhile), until ctx ends.
func (w *Worker) probeLoop(ctx context.Context) {
	quiet := time.NewTicker(w.cfg.HeartbeatInterval)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.api.wake:
			if !w.probeUntilUp(ctx) {
				return
			}
		case <-quiet.C:
			if down, _, _ := w.api.state(); down || w.api.quietFor() < w.cfg.HeartbeatInterval {
				continue
			}
			// As long as a …/run may take: a busy executor is not lost.
			if !w.probe(ctx, w.runTimeout()) {
				return
			}
		}
	}
}

// probeUntilUp probes every apiProbeInterval until the API answers; it
// reports false when ctx ended first.
func (w *Worker) probeUntilUp(ctx context.Context) bool {
	t := time.NewTicker(apiProbeInterval)
	defer t.Stop()
	for down, _, _ := w.api.state(); down; down, _, _ = w.api.state() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if !w.probe(ctx, apiProbeTimeout) {
			return false
		}
	}
	return true
}

// probe asks GET /execution/health once; it reports false when ctx ended.
func (w *Worker) probe(ctx context.Context, timeout time.Duration) bool {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := w.cfg.API.Health(pctx)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	w.noteAPI(err)
	return true
}

// waitAPI blocks while the API is unreachable; it fails only when ctx ends.
func (w *Worker) waitAPI(ctx context.Context) error {
	select {
	case <-w.api.upC():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
