package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/queue"
)

// ErrStarted is returned by a second Start.
var ErrStarted = errors.New("worker already started")

// errShutdown is the cause with which Stop cancels the tasks still running
// after the grace period.
var errShutdown = errors.New("worker shutting down")

// inProgressIntervalDefault is how often a message being handled is kept
// alive with InProgress when the consumer's AckWait is unknown.
const inProgressIntervalDefault = 10 * time.Second

// Worker pulls activities for its queues and supervises their tasks. Create
// it with New, run it with Start, end it with Stop.
type Worker struct {
	cfg Config
	log *slog.Logger
	// authRejected counts the runtime connections refused for want of the
	// runtime's secret (runtimeauth.go).
	authRejected authCounters
	// sweeper kills what ended task processes left in other process groups
	// of their sessions (session.go).
	sweeper sessionSweeper

	// slots is the semaphore of Concurrency shared by all queues: a token is
	// taken before a pull and held by the activity's goroutine until it is
	// done.
	slots chan struct{}

	// deferRoot holds the command runtime's defer files, made on first use.
	deferOnce sync.Once
	deferRoot string
	deferErr  error

	batchMax int // most slots one queue's pull may hold at once

	running  atomic.Int64
	draining atomic.Bool

	// The registry entry (see registry.go).
	registry  queue.Bucket
	runtimes  []string
	startedAt time.Time
	regCancel context.CancelFunc
	regWG     sync.WaitGroup

	qm map[string]*queueMetrics // per-queue metrics, read-only after New

	pools map[string]*warmPool // warm queues' processes, read-only after New
	// zygotes are the prefork queues' zygotes, read-only after New.
	zygotes map[string]*zygote
	// services are the Services' runners, set by Start, stopped by Stop.
	services []*serviceRunner

	mu         sync.Mutex
	started    bool
	stopping   bool
	stopped    chan struct{}
	active     map[string]bool // activity id → handed off (acked)
	inProgress time.Duration
	lock       *os.File // flock on StateDir

	// pullCtx ends the pull loops (phase 1 of Stop); taskCtx cancels the
	// running tasks with a cause (phase 3); hardCtx aborts what is left,
	// final reports included, when Stop's own context ends.
	pullCtx    context.Context
	pullCancel context.CancelFunc
	taskCtx    context.Context
	taskCancel context.CancelCauseFunc
	hardCtx    context.Context
	hardCancel context.CancelFunc

	bells []*queue.Bell // doorbells of the queues, when several

	api     *apiReach     // whether the Execution API answers (apireach.go)
	regKick chan struct{} // cap 1: write the registry entry now

	pullWG sync.WaitGroup // pull loops
	taskWG sync.WaitGroup // one per pulled message, until it is settled
	// handlers runs each pulled message's handle (handlers.go).
	handlers *handlers
}

// New validates cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:        cfg,
		log:        cfg.Logger.With("worker_id", cfg.ID),
		slots:      make(chan struct{}, cfg.Concurrency),
		batchMax:   max(1, cfg.Concurrency/len(cfg.Queues)),
		stopped:    make(chan struct{}),
		active:     map[string]bool{},
		inProgress: inProgressIntervalDefault,
		runtimes:   cfg.runtimeNames(),
		qm:         cfg.Metrics.forQueues(cfg.Queues),
		api:        newAPIReach(),
		regKick:    make(chan struct{}, 1),
		pools:      map[string]*warmPool{},
		zygotes:    map[string]*zygote{},
		handlers:   newHandlers(handlerIdle),
	}
	for q, rt := range cfg.Runtimes {
		if rt.sdk() && rt.Warm != nil {
			w.pools[q] = newWarmPool(w, q, rt)
		}
		if rt.Prefork != nil {
			w.zygotes[q] = newZygote(w, q, rt)
		}
	}
	return w, nil
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Running returns the number of tasks and callbacks running now.
func (w *Worker) Running() int { return int(w.running.Load()) }

// Start checks that every queue's consumer exists, kills the orphans a
// previous incarnation left in StateDir, and starts pulling.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return ErrStarted
	}
	w.started = true
	w.mu.Unlock()

	consumers := make(map[string]queue.Consumer, len(w.cfg.Queues))
	for _, q := range w.cfg.Queues {
		c, err := w.cfg.Queue.ActivityConsumer(ctx, q)
		if err != nil {
			w.abortStart()
			return fmt.Errorf("activity consumer for queue %s: %w", q, err)
		}
		consumers[q] = c
		if ackWait := c.AckWait(); ackWait > 0 {
			w.inProgress = min(w.inProgress, ackWait/3)
		}
	}
	if w.cfg.StateDir != "" {
		lock, err := w.openStateDir()
		if err != nil {
			w.abortStart()
			return err
		}
		w.lock = lock
	}

	// Queues that compete for slots wait for their doorbell when idle
	// rather than hold a slot in a pull (see pullLoop); one queue never
	// competes.
	bells := make(map[string]*queue.Bell, len(w.cfg.Queues))
	if len(w.cfg.Queues) > 1 {
		for _, q := range w.cfg.Queues {
			b, err := w.cfg.Queue.Doorbell(q)
			if err != nil {
				w.closeBells()
				w.closeStateDir()
				w.abortStart()
				return err
			}
			bells[q] = b
			w.bells = append(w.bells, b)
		}
	}

	w.pullCtx, w.pullCancel = context.WithCancel(context.Background())
	w.taskCtx, w.taskCancel = context.WithCancelCause(context.Background())
	w.hardCtx, w.hardCancel = context.WithCancel(context.Background())
	w.startedAt = time.Now().UTC()
	w.registry = w.cfg.Queue.Bucket(queue.BucketWorkers)
	if err := w.startRegistry(ctx); err != nil {
		w.closeBells()
		w.pullCancel()
		w.taskCancel(nil)
		w.hardCancel()
		w.closeStateDir()
		w.abortStart()
		return fmt.Errorf("worker registry: %w", err)
	}
	w.startServices()
	for _, z := range w.zygotes {
		z.start()
	}
	for q, pool := range w.pools {
		if err := pool.start(); err != nil {
			w.log.Error("start warm runtimes; they are started again when a task needs one", "queue", q, "err", err)
		}
	}
	for _, pool := range w.pools {
		if err := pool.probe(ctx, w.cfg.HandshakeTimeout); err != nil {
			_ = w.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	for _, q := range w.cfg.Queues {
		w.pullWG.Add(1)
		go w.pullLoop(q, bells[q])
	}
	w.log.Info("worker started", "queues", w.cfg.Queues, "concurrency", w.cfg.Concurrency, "hostname", w.cfg.Hostname)
	return nil
}

func (w *Worker) abortStart() {
	w.mu.Lock()
	w.started = false
	w.mu.Unlock()
}

// Stop shuts the worker down in phases: it stops pulling, lets running tasks
// finish for up to GracePeriod (or until ctx ends), then kills the rest and
// reports them up_for_retry with reason "worker shutting down", and waits
// for every goroutine. If ctx ends first, final reports are abandoned (the
// executor's zombie check retries those tasks) and ctx's error is returned.
// Stop is idempotent; a Worker that was never started stops at once.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.started {
		w.mu.Unlock()
		return nil
	}
	if w.stopping {
		w.mu.Unlock()
		select {
		case <-w.stopped:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.stopping = true
	w.mu.Unlock()
	defer close(w.stopped)

	// Phase 1: no new pulls; a pull under way ends at once, and what is
	// still delivered to it is Nak'd (see fetch).
	w.pullCancel()
	w.pullWG.Wait()
	w.closeBells()

	// Phase 2: let running tasks finish.
	idle := make(chan struct{})
	go func() {
		w.taskWG.Wait()
		close(idle)
	}()
	var err error
	grace := time.NewTimer(w.cfg.GracePeriod)
	defer grace.Stop()
	select {
	case <-idle:
	case <-grace.C:
	case <-ctx.Done():
	}

	// Phase 3: cancel what is left with a cause, and wait.
	select {
	case <-idle:
	default:
		w.log.Info("stopping running tasks", "running", w.Running())
		w.taskCancel(errShutdown)
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
			w.hardCancel()
			<-idle
		}
	}
	w.taskCancel(errShutdown)
	w.handlers.stop()
	for _, pool := range w.pools {
		pool.stop()
	}
	for _, z := range w.zygotes {
		z.stop()
	}
	w.stopServices()
	w.hardCancel()
	w.sweeper.flush()
	w.stopRegistry()
	w.closeStateDir()
	w.removeDeferRoot()
	w.log.Info("worker stopped")
	return err
}

// bellPullWait is the expiry of a pull made on a doorbell. The pull
// returns as soon as a message comes; it waits at all because the server
// counts a stored message as pending for a consumer a moment after it
// rings the bell (another goroutine of its), so a no-wait pull right after
// the bell can find nothing.
const bellPullWait = 100 * time.Millisecond

// bellBackstop is how long a queue waiting for its doorbell waits at most
// before it pulls anyway: activities made available again without being
// stored anew (a Nak, an expired AckWait) ring no bell.
const bellBackstop = 2 * time.Second

// acquire takes one slot, blocking until one is free or ctx ends.
func (w *Worker) acquire(ctx context.Context) error {
	select {
	case w.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes up to n free slots without blocking and returns how many.
func (w *Worker) tryAcquire(n int) int {
	got := 0
	for got < n {
		select {
		case w.slots <- struct{}{}:
			got++
		default:
			return got
		}
	}
	return got
}

func (w *Worker) release(n int) {
	for range n {
		<-w.slots
	}
}

// pullLoop pulls q's activities while slots are free. A pull holds the slots
// it asks for; each message arriving takes one of them over at once, and the
// unused ones are given back when the pull request ends. One pull holds at
// most Concurrency/len(Queues) slots.
//
// While every queue can poll at once (free slots ≥ queues), a pull waits up
// to FetchMaxWait for messages: the lowest latency, one pull request per
// batch. When queues compete for slots (more queues than free slots: a
// worker of 100 queues and 8 slots, or a busy one), a pull that waited on
// an idle queue would keep its slot from the others; so then q's pulls wait
// only for what is there (or, after a ring, bellPullWait for what rang)
// and, once q is drained, q waits for its doorbell, holding no slot, before
// it pulls again.
func (w *Worker) pullLoop(q string, bell *queue.Bell) {
	defer w.pullWG.Done()
	ctx := w.pullCtx
	log := w.log.With("queue", q)
	// A message delivered to a pull this worker gave up on is given back,
	// not left unacknowledged until the ack wait (see queue.Puller).
	p, err := w.cfg.Queue.ActivityPuller(q)
	if err != nil {
		log.Error("activity puller", "err", err) // cannot be: Config.validate checked the queue names
		return
	}
	defer func() {
		if err := p.Close(); err != nil {
			log.Warn("close activity puller", "err", err)
		}
	}()
	backoff := 100 * time.Millisecond
	rung := false   // the last wait for q's doorbell ended with a ring
	var seen uint64 // the highest stream sequence pulled here from q
	for {
		// A worker that cannot reach the Execution API could start
		// nothing it pulled: it leaves the activities to workers that can.
		if err := w.waitAPI(ctx); err != nil {
			return
		}
		if err := w.acquire(ctx); err != nil {
			return
		}
		n := 1 + w.tryAcquire(w.batchMax-1)
		wait := w.cfg.FetchMaxWait
		contended := bell != nil && cap(w.slots)-len(w.slots) < len(w.cfg.Queues)-1
		if contended {
			// After a ring, wait a little for what rang; else (the first
			// pull, the backstop) take only what is there.
			wait = 0
			if rung {
				wait = bellPullWait
			}
		}
		drained, last, err := w.fetch(ctx, q, p, n, wait)
		seen = max(seen, last)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			rung = false
			if contended && drained {
				if rung, err = w.waitBell(ctx, bell, seen); err != nil {
					return
				}
			}
			continue
		}
		log.Warn("pull activities failed", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
		// The consumer may be gone: its state lives in the server's memory
		// (see queue.Client.ActivityConsumer), so a NATS restart loses it.
		// Make it again (or find it) before the next pull.
		if _, err := w.cfg.Queue.ActivityConsumer(ctx, q); err != nil && ctx.Err() == nil {
			log.Warn("activity consumer", "err", err)
		}
	}
}

// waitBell waits, at most bellBackstop, for bell to ring for an activity
// past stream sequence seen (a ring for one already pulled is no news),
// and reports whether it rang; it fails only when ctx ends.
func (w *Worker) waitBell(ctx context.Context, bell *queue.Bell, seen uint64) (rang bool, err error) {
	t := time.NewTimer(bellBackstop)
	defer t.Stop()
	for {
		select {
		case <-bell.C():
			if bell.Seq() > seen {
				return true, nil
			}
		case <-t.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// closeBells ends the doorbell subscriptions.
func (w *Worker) closeBells() {
	for _, b := range w.bells {
		_ = b.Close()
	}
	w.bells = nil
}

// fetch runs one pull request for up to n messages, waiting up to wait for
// them (0: only those there now); it owns n slots and hands one to each
// message's goroutine as it comes. drained reports that the queue had no
// more for this consumer: fewer than n came, or the last said none were
// pending after it; last is the highest stream sequence that came.
//
// The pull ends when the server says so, or at once when ctx ends (Stop,
// a drain): what was delivered to it is then given back by the Puller (a
// Nak), so no activity waits for the ack wait (see queue.Puller; nats.go's
// Fetch dropped those deliveries).
func (w *Worker) fetch(ctx context.Context, q string, p *queue.Puller, n int, wait time.Duration) (drained bool, last uint64, err error) {
	batch, err := p.Fetch(ctx, n, wait)
	if err != nil {
		w.release(n)
		return false, 0, fmt.Errorf("fetch: %w", err)
	}
	handed, pending := 0, uint64(1)
	for msg := range batch.All() {
		if info, ok := msg.Info(); ok {
			pending, last = info.Pending, max(last, info.StreamSeq)
		}
		if ctx.Err() != nil {
			// Stopping: give it back at once for another worker.
			_ = msg.Nak()
			continue
		}
		handed++
		w.taskWG.Add(1)
		w.handlers.run(func() { w.handle(q, msg) })
	}
	w.release(n - handed)
	if err := batch.Err(); err != nil {
		return false, last, fmt.Errorf("fetch: %w", err)
	}
	return handed < n || pending == 0, last, nil
}

// claim marks activity id as being handled here; it reports false (and
// whether the earlier copy was already handed off) when it already is.
func (w *Worker) claim(id string) (ok, handedOff bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h, dup := w.active[id]; dup {
		return false, h
	}
	w.active[id] = false
	return true, false
}

func (w *Worker) markHandedOff(id string) {
	w.mu.Lock()
	w.active[id] = true
	w.mu.Unlock()
}

func (w *Worker) unclaim(id string) {
	w.mu.Lock()
	delete(w.active, id)
	w.mu.Unlock()
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
