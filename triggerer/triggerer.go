package triggerer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/trigger"
)

// Triggerer claims triggers of deferred tasks and runs them; see the
// package doc.
type Triggerer struct {
	cfg Config
	log *slog.Logger
	q   *queue.Client
	kv  queue.Bucket // claims
	hb  queue.Bucket // heartbeats
	env *trigger.Env
	// py is the Python trigger runtime, nil without Config.PythonTriggers.
	py  *pyRuntime
	ext *externalEvents
	// limits paces polling triggers by rate key (ratelimit.go).
	limits *rateLimiter

	mu      sync.Mutex
	claims  map[string]cached
	running map[string]*run
	seen    map[string]time.Time // triggerer id → when its heartbeat last changed (local clock)
	started time.Time
	// stopping: Stop began; nothing new is claimed.
	stopping bool
	out      []firedEvent // fired events waiting to be published

	freed   chan struct{} // a slot came free
	kick    chan struct{} // look for orphans now
	outCh   chan struct{} // out has work
	lcMu    sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pubWG   sync.WaitGroup
	stopped bool
	startOK bool
}

type firedEvent struct {
	r  *run
	ev activity.TriggerEvent
}

// New checks cfg and returns a Triggerer; Start runs it.
func New(cfg Config) (*Triggerer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tr := &Triggerer{
		cfg:     cfg,
		log:     cfg.Logger.With("triggerer_id", cfg.ID),
		q:       cfg.Queue,
		kv:      cfg.Queue.Bucket(queue.BucketTriggers),
		hb:      cfg.Queue.Bucket(queue.BucketTriggerers),
		claims:  make(map[string]cached),
		running: make(map[string]*run),
		seen:    make(map[string]time.Time),
		freed:   make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		outCh:   make(chan struct{}, 1),
	}
	tr.ext = newExternalEvents(cfg.Queue.Bucket(queue.BucketExternalEvents), tr.log)
	tr.limits = newRateLimiter(cfg.Queue.Bucket(queue.BucketRateLimits), tr.log)
	if cfg.Metrics != nil {
		tr.limits.onLimit = cfg.Metrics.rateLimited
	}
	tr.env = &trigger.Env{HTTPClient: cfg.HTTPClient, Events: tr.ext, Logger: tr.log, Limiter: tr.limits}
	if len(cfg.PythonTriggers) > 0 {
		tr.py = newPyRuntime(cfg.PythonTriggers, tr.limits, cfg.API, tr.log)
		tr.env.Python = tr.py
	}
	return tr, nil
}

// ID is the triggerer's id.
func (tr *Triggerer) ID() string { return tr.cfg.ID }

// Held is how many triggers the triggerer runs now.
func (tr *Triggerer) Held() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.running)
}

// Start loads the claims and heartbeats, writes the first heartbeat and
// starts claiming triggers. It returns once the triggerer is working.
func (tr *Triggerer) Start(ctx context.Context) error {
	tr.lcMu.Lock()
	defer tr.lcMu.Unlock()
	if tr.startOK || tr.stopped {
		return errors.New("triggerer: already started")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	fail := func(err error) error {
		cancel()
		tr.wg.Wait()
		tr.pubWG.Wait()
		return err
	}
	tr.mu.Lock()
	tr.started = time.Now()
	tr.mu.Unlock()

	// Without the rate limits the polls would go unpaced, past the
	// cluster's limits: a triggerer that cannot watch them does not start.
	limitsReady, limitsErr := make(chan struct{}), make(chan error, 1)
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		limitsErr <- tr.limits.run(runCtx, limitsReady)
	}()
	select {
	case <-limitsReady:
	case err := <-limitsErr:
		if err == nil {
			err = errors.New("ended")
		}
		return fail(fmt.Errorf("triggerer: rate limits: %w", err))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if err := tr.ext.start(ctx, runCtx, &tr.wg); err != nil {
		return fail(fmt.Errorf("triggerer: watch external events: %w", err))
	}
	if err := tr.watch(ctx, runCtx, tr.hb, tr.applyHeartbeat); err != nil {
		return fail(fmt.Errorf("triggerer: watch heartbeats: %w", err))
	}
	if err := tr.watch(ctx, runCtx, tr.kv, tr.applyClaim); err != nil {
		return fail(fmt.Errorf("triggerer: watch claims: %w", err))
	}
	if err := tr.beat(ctx); err != nil {
		return fail(err)
	}
	if _, err := tr.q.TriggerConsumer(ctx); err != nil {
		return fail(fmt.Errorf("triggerer: %w", err))
	}
	// No trigger delivered to a pull this triggerer gave up on waits for
	// the ack wait (see queue.Puller).
	puller := tr.q.TriggerPuller()
	for range tr.cfg.PublishWorkers {
		tr.pubWG.Add(1)
		go func() {
			defer tr.pubWG.Done()
			tr.publishLoop(runCtx)
		}()
	}
	tr.wg.Add(2)
	go func() {
		defer tr.wg.Done()
		tr.pullLoop(runCtx, puller)
		if err := puller.Close(); err != nil {
			tr.log.Warn("close trigger puller", "err", err)
		}
	}()
	go func() {
		defer tr.wg.Done()
		tr.maintainLoop(runCtx)
	}()
	tr.startOK = true
	tr.log.Info("triggerer started", "capacity", tr.cfg.Capacity,
		"heartbeat_interval", tr.cfg.HeartbeatInterval, "dead_after", tr.cfg.DeadAfter)
	return nil
}

// Stop stops claiming, stops every trigger, publishes the events that had
// fired already, and hands the other triggers back so that the other
// triggerers claim them at once. It waits for its goroutines; ctx bounds
// the hand-back. Idempotent.
func (tr *Triggerer) Stop(ctx context.Context) error {
	tr.lcMu.Lock()
	defer tr.lcMu.Unlock()
	if !tr.startOK || tr.stopped {
		tr.stopped = true
		return nil
	}
	tr.stopped = true
	// No new claims from here on; heartbeats go on until the triggers are
	// handed back, so no one takes them over meanwhile.
	tr.mu.Lock()
	tr.stopping = true
	runs := make([]*run, 0, len(tr.running))
	for _, r := range tr.running {
		runs = append(runs, r)
	}
	tr.mu.Unlock()
	for _, r := range runs {
		r.halt()
	}
	// Events already fired are published before we go.
	tr.drainOut(ctx)

	handed, failed := 0, 0
	for _, r := range runs {
		if !r.is(halted) {
			continue
		}
		if err := tr.handBack(ctx, r); err != nil {
			failed++
			tr.log.Warn("hand trigger back", "trigger_id", r.trigger.ID, "err", err)
			continue
		}
		handed++
	}
	if tr.py != nil {
		tr.py.close(ctx)
	}
	tr.cancel()
	tr.wg.Wait()
	tr.pubWG.Wait()
	tr.drainOut(ctx)
	if err := tr.hb.Delete(ctx, tr.cfg.ID); err != nil {
		tr.log.Warn("delete heartbeat", "err", err)
	}
	tr.mu.Lock()
	clear(tr.running)
	tr.mu.Unlock()
	tr.setHeld(0)
	tr.log.Info("triggerer stopped", "handed_back", handed, "hand_back_failed", failed)
	if failed > 0 {
		return fmt.Errorf("triggerer: %d triggers not handed back (they are taken over once the heartbeat is found dead)", failed)
	}
	return nil
}

func (tr *Triggerer) isStopping() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stopping
}

func (tr *Triggerer) setHeld(n int) {
	if tr.cfg.Metrics != nil {
		tr.cfg.Metrics.held.Set(float64(n))
	}
}

// Snapshot returns the triggers held now, for operators.
func (tr *Triggerer) Snapshot() map[string]activity.Trigger {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[string]activity.Trigger, len(tr.running))
	for id, r := range tr.running {
		t := r.trigger
		t.Token = ""
		out[id] = t
	}
	return maps.Clone(out)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("triggerer: encode %T: %v", v, err))
	}
	return b
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
