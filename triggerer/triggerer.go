package triggerer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/trigger"
)

// Defaults for [Config].
const (
	CapacityDefault          = 1000
	HeartbeatIntervalDefault = 5 * time.Second
	// DeadAfterDefault is how long a triggerer may go without a heartbeat
	// before the others take its triggers: with the heartbeat interval
	// and one adoption pass, its triggers run again within about 20s
	// (Airflow's threshold is 30s).
	DeadAfterDefault      = 15 * time.Second
	PublishWorkersDefault = 8
	fetchBatchMax         = 256
	claimConcurrency      = 64
	fetchWait             = time.Second
)

// Config configures [New]. The zero value of each field means its default.
type Config struct {
	// Queue is the JetStream client (required).
	Queue *queue.Client
	// ID names this triggerer in claims and heartbeats; default
	// <hostname>-<pid>-<random>.
	ID string
	// Capacity is the most triggers held at once. Default 1000.
	Capacity int
	// HeartbeatInterval is how often the heartbeat is written and orphaned
	// triggers are looked for. Default 5s.
	HeartbeatInterval time.Duration
	// DeadAfter is how long another triggerer's heartbeat may be silent
	// before its triggers are taken over. Default 15s.
	DeadAfter time.Duration
	// PublishWorkers bounds the goroutines publishing fired events.
	// Default 8.
	PublishWorkers int
	// HTTPClient is used by "http" triggers; default http.DefaultClient.
	HTTPClient *http.Client
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, is updated as triggers come and go.
	Metrics *Metrics
}

// WithDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) WithDefaults() Config {
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = CapacityDefault
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DeadAfterDefault
	}
	if cfg.PublishWorkers <= 0 {
		cfg.PublishWorkers = PublishWorkersDefault
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

func (cfg Config) validate() error {
	if cfg.Queue == nil {
		return errors.New("triggerer: Config.Queue is required")
	}
	if err := validKey(cfg.ID); err != nil {
		return fmt.Errorf("triggerer: id %q: %w", cfg.ID, err)
	}
	if cfg.DeadAfter <= cfg.HeartbeatInterval {
		return fmt.Errorf("triggerer: dead-after %s must exceed the heartbeat interval %s", cfg.DeadAfter, cfg.HeartbeatInterval)
	}
	return nil
}

func validKey(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '='
		if !ok {
			return fmt.Errorf("character %q: use [A-Za-z0-9_=-]", r)
		}
	}
	return nil
}

// claim is a trigger's entry in the triggers bucket. Owner "" means it was
// handed back and waits to be claimed.
type claim struct {
	Owner     string           `json:"owner"`
	ClaimedAt time.Time        `json:"claimed_at,omitzero"`
	Trigger   activity.Trigger `json:"trigger"`
}

// heartbeat is a triggerer's entry in the triggerers bucket.
type heartbeat struct {
	ID       string    `json:"id"`
	Hostname string    `json:"hostname,omitempty"`
	Capacity int       `json:"capacity"`
	Held     int       `json:"held"`
	At       time.Time `json:"at"`
	// StartedAt is when the triggerer started, for operators.
	StartedAt time.Time `json:"started_at"`
}

// cached is what the claims watch knows of a trigger.
type cached struct {
	owner   string
	rev     uint64
	trigger activity.Trigger
}

// runState is where a run is in its life.
type runState int

const (
	waiting runState = iota // started, not fired
	fired                   // fired: its event is being published
	halted                  // stopped without an event (lost, retired or handed back)
)

// run is a trigger this triggerer runs.
type run struct {
	trigger activity.Trigger

	mu    sync.Mutex
	state runState
	rev   uint64 // of our claim
	stop  func()
	timer *time.Timer
}

// settle moves a waiting run to state to and stops its trigger and timer;
// it reports whether the run was waiting.
func (r *run) settle(to runState) bool {
	r.mu.Lock()
	if r.state != waiting {
		r.mu.Unlock()
		return false
	}
	r.state = to
	stop, timer := r.stop, r.timer
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
	if timer != nil {
		timer.Stop()
	}
	return true
}

// halt stops r without an event; it reports whether r was still waiting.
func (r *run) halt() bool { return r.settle(halted) }

func (r *run) is(st runState) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state == st
}

// Triggerer claims triggers of deferred tasks and runs them; see the
// package doc.
type Triggerer struct {
	cfg Config
	log *slog.Logger
	q   *queue.Client
	kv  queue.Bucket // claims
	hb  queue.Bucket // heartbeats
	env *trigger.Env
	ext *externalEvents

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
	tr.env = &trigger.Env{HTTPClient: cfg.HTTPClient, Events: tr.ext, Logger: tr.log}
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
	cons, err := tr.q.TriggerConsumer(ctx)
	if err != nil {
		return fail(fmt.Errorf("triggerer: %w", err))
	}
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
		tr.pullLoop(runCtx, cons)
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

// watch starts a watch of every key of kv and returns once its initial
// values are applied.
func (tr *Triggerer) watch(ctx, runCtx context.Context, kv queue.Bucket, apply func(queue.Entry)) error {
	return watchKV(ctx, runCtx, &tr.wg, kv, apply)
}

// watchKV calls apply with every entry of kv, the current ones then every
// change, from a goroutine counted in wg that ends with runCtx. It returns
// once the current entries are applied.
func watchKV(ctx, runCtx context.Context, wg *sync.WaitGroup, kv queue.Bucket, apply func(queue.Entry)) error {
	w, err := kv.WatchAll(runCtx)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { _ = w.Stop() }()
		readyOnce := sync.OnceFunc(func() { close(ready) })
		defer readyOnce()
		for {
			select {
			case <-runCtx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e.CaughtUp() {
					readyOnce()
					continue
				}
				apply(e)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (tr *Triggerer) applyHeartbeat(e queue.Entry) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !e.IsPut() {
		tr.seen[e.Key()] = time.Time{} // said goodbye: dead at once
		return
	}
	tr.seen[e.Key()] = time.Now()
}

func (tr *Triggerer) applyClaim(e queue.Entry) {
	id := e.Key()
	var c claim
	isPut := e.IsPut()
	if isPut {
		if err := json.Unmarshal(e.Value(), &c); err != nil {
			tr.log.Warn("undecodable trigger claim", "trigger_id", id, "err", err)
			isPut = false
		}
	}
	tr.mu.Lock()
	r := tr.running[id]
	if !isPut {
		delete(tr.claims, id)
	} else {
		tr.claims[id] = cached{owner: c.Owner, rev: e.Revision(), trigger: c.Trigger}
	}
	tr.mu.Unlock()

	switch {
	case r != nil && (!isPut || c.Owner != tr.cfg.ID):
		// Retired, cancelled, or claimed by another triggerer: not ours
		// any more.
		if r.halt() {
			tr.log.Debug("trigger no longer ours", "trigger_id", id, "owner", c.Owner)
		}
		tr.forget(r)
	case r != nil:
		r.mu.Lock()
		r.rev = e.Revision()
		r.mu.Unlock()
	case isPut && c.Owner == "":
		tr.kickAdopt()
	}
}

func (tr *Triggerer) kickAdopt() {
	select {
	case tr.kick <- struct{}{}:
	default:
	}
}

func (tr *Triggerer) signalFreed() {
	select {
	case tr.freed <- struct{}{}:
	default:
	}
}

// free is how many more triggers fit.
func (tr *Triggerer) free() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.cfg.Capacity - len(tr.running)
}

func (tr *Triggerer) pullLoop(ctx context.Context, cons queue.Consumer) {
	for ctx.Err() == nil {
		n := tr.free()
		if n <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-tr.freed:
			case <-time.After(fetchWait):
			}
			continue
		}
		batch, err := cons.Fetch(min(n, fetchBatchMax), fetchWait)
		if err != nil {
			if ctx.Err() == nil {
				tr.log.Warn("fetch triggers", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(fetchWait):
				}
			}
			continue
		}
		// Claims are KV round trips: run a batch's concurrently.
		var g errgroup.Group
		g.SetLimit(claimConcurrency)
		for m := range batch.All() {
			g.Go(func() error {
				tr.onNew(ctx, m)
				return nil
			})
		}
		_ = g.Wait()
		if err := batch.Err(); err != nil && !errors.Is(err, queue.ErrNoMessages) && ctx.Err() == nil {
			tr.log.Debug("fetch triggers", "err", err)
		}
	}
}

// onNew claims a trigger from TRIGGERS and starts it.
func (tr *Triggerer) onNew(ctx context.Context, m queue.Delivery) {
	if tr.isStopping() {
		_ = m.Nak() // for another triggerer, now
		return
	}
	var t activity.Trigger
	if err := json.Unmarshal(m.Data(), &t); err != nil || t.ID == "" || t.TIID == "" {
		tr.log.Error("drop undecodable trigger", "err", err, "data", truncate(m.Data(), 200))
		_ = m.Term()
		return
	}
	rev, err := tr.kv.Create(ctx, t.ID, mustJSON(claim{Owner: tr.cfg.ID, ClaimedAt: time.Now().UTC(), Trigger: t}))
	switch {
	case err == nil:
		tr.startRun(t, rev)
	case errors.Is(err, queue.ErrKeyExists):
		// Delivered again: someone holds it, or it waits to be adopted.
		tr.kickAdopt()
	default:
		if ctx.Err() == nil {
			tr.log.Warn("claim trigger", "trigger_id", t.ID, "err", err)
		}
		_ = m.Nak()
		return
	}
	if err := m.Ack(); err != nil && ctx.Err() == nil {
		tr.log.Debug("ack trigger", "trigger_id", t.ID, "err", err)
	}
}

func (tr *Triggerer) maintainLoop(ctx context.Context) {
	t := time.NewTicker(tr.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := tr.beat(ctx); err != nil && ctx.Err() == nil {
				tr.log.Warn("heartbeat", "err", err)
			}
		case <-tr.kick:
		}
		tr.adoptOrphans(ctx)
	}
}

func (tr *Triggerer) beat(ctx context.Context) error {
	host, _ := os.Hostname()
	held := tr.Held()
	hb := heartbeat{ID: tr.cfg.ID, Hostname: host, Capacity: tr.cfg.Capacity, Held: held,
		At: time.Now().UTC(), StartedAt: tr.started.UTC()}
	if _, err := tr.hb.Put(ctx, tr.cfg.ID, mustJSON(hb)); err != nil {
		return fmt.Errorf("triggerer: heartbeat: %w", err)
	}
	return nil
}

// alive says whether triggerer id counts as alive; tr.mu is held.
func (tr *Triggerer) alive(id string, now time.Time) bool {
	if id == tr.cfg.ID {
		return true
	}
	seen, ok := tr.seen[id]
	if !ok {
		seen = tr.started // unknown: give it the benefit of the doubt from our start
	}
	return now.Sub(seen) < tr.cfg.DeadAfter
}

func (tr *Triggerer) isStopping() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.stopping
}

// adoptOrphans claims triggers handed back or held by dead triggerers, up
// to the free capacity.
func (tr *Triggerer) adoptOrphans(ctx context.Context) {
	now := time.Now()
	tr.mu.Lock()
	if tr.stopping {
		tr.mu.Unlock()
		return
	}
	free := tr.cfg.Capacity - len(tr.running)
	var cands []cached
	for id, c := range tr.claims {
		if len(cands) >= free {
			break
		}
		if _, mine := tr.running[id]; mine || c.owner == tr.cfg.ID {
			continue
		}
		if c.owner == "" || !tr.alive(c.owner, now) {
			cands = append(cands, c)
		}
	}
	tr.mu.Unlock()
	for _, c := range cands {
		if ctx.Err() != nil {
			return
		}
		rev, err := tr.kv.Update(ctx, c.trigger.ID, mustJSON(claim{Owner: tr.cfg.ID, ClaimedAt: time.Now().UTC(), Trigger: c.trigger}), c.rev)
		if err != nil {
			// Another triggerer was faster, or the trigger is gone.
			tr.log.Debug("adopt trigger", "trigger_id", c.trigger.ID, "err", err)
			continue
		}
		tr.log.Info("adopted trigger", "trigger_id", c.trigger.ID, "ti_id", c.trigger.TIID, "from", c.owner)
		tr.startRun(c.trigger, rev)
	}
}

// startRun runs trigger t, claimed at revision rev.
func (tr *Triggerer) startRun(t activity.Trigger, rev uint64) {
	tr.mu.Lock()
	if tr.stopping {
		// Claimed while Stop began: give it back at once.
		tr.mu.Unlock()
		if _, err := tr.kv.Update(context.Background(), t.ID, mustJSON(claim{Trigger: t}), rev); err != nil {
			tr.log.Warn("hand back a trigger claimed during stop", "trigger_id", t.ID, "err", err)
		}
		return
	}
	if r, ok := tr.running[t.ID]; ok {
		tr.mu.Unlock()
		r.mu.Lock()
		r.rev = max(r.rev, rev)
		r.mu.Unlock()
		return
	}
	r := &run{trigger: t, rev: rev}
	tr.running[t.ID] = r
	held := len(tr.running)
	tr.mu.Unlock()
	tr.setHeld(held)

	stop, err := trigger.Start(tr.env, t, func(ev trigger.Event) { tr.fire(r, ev) })
	if err != nil {
		tr.fire(r, trigger.Event{Err: "start trigger: " + err.Error()})
		return
	}
	var timer *time.Timer
	if t.Timeout > 0 {
		deadline := t.DeferredAt.Add(t.Timeout.D())
		timer = time.AfterFunc(time.Until(deadline), func() {
			tr.fire(r, trigger.Event{Err: fmt.Sprintf("trigger timeout after %s", t.Timeout.D())})
		})
	}
	r.mu.Lock()
	settled := r.state != waiting
	r.stop, r.timer = stop, timer
	r.mu.Unlock()
	if settled {
		// It fired (or was halted) before we got here.
		stop()
		if timer != nil {
			timer.Stop()
		}
	}
	tr.log.Debug("trigger started", "trigger_id", t.ID, "ti_id", t.TIID, "kind", t.Kind)
}

// fire queues r's event for publishing, once.
func (tr *Triggerer) fire(r *run, ev trigger.Event) {
	if !r.settle(fired) {
		return
	}
	if tr.cfg.Metrics != nil {
		tr.cfg.Metrics.fired(r.trigger, ev)
	}
	te := activity.TriggerEvent{TriggerID: r.trigger.ID, TIID: r.trigger.TIID, Try: r.trigger.Try,
		Payload: ev.Payload, Error: ev.Err, FiredAt: time.Now().UTC(), FiredBy: tr.cfg.ID}
	tr.mu.Lock()
	tr.out = append(tr.out, firedEvent{r: r, ev: te})
	tr.mu.Unlock()
	select {
	case tr.outCh <- struct{}{}:
	default:
	}
}

func (tr *Triggerer) forget(r *run) {
	tr.mu.Lock()
	if tr.running[r.trigger.ID] == r {
		delete(tr.running, r.trigger.ID)
	}
	held := len(tr.running)
	tr.mu.Unlock()
	tr.setHeld(held)
	tr.signalFreed()
}

func (tr *Triggerer) setHeld(n int) {
	if tr.cfg.Metrics != nil {
		tr.cfg.Metrics.held.Set(float64(n))
	}
}

func (tr *Triggerer) takeOut() (firedEvent, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.out) == 0 {
		return firedEvent{}, false
	}
	f := tr.out[0]
	tr.out[0] = firedEvent{}
	tr.out = tr.out[1:]
	if len(tr.out) == 0 {
		tr.out = nil
	}
	return f, true
}

func (tr *Triggerer) publishLoop(ctx context.Context) {
	for {
		f, ok := tr.takeOut()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-tr.outCh:
			}
			continue
		}
		tr.publish(ctx, f)
		// Wake another publisher: there may be more.
		select {
		case tr.outCh <- struct{}{}:
		default:
		}
	}
}

// drainOut publishes what is left after the publishers stopped.
func (tr *Triggerer) drainOut(ctx context.Context) {
	for {
		f, ok := tr.takeOut()
		if !ok || ctx.Err() != nil {
			return
		}
		tr.publish(ctx, f)
	}
}

// publish publishes a fired event, retrying until ctx ends, then retires
// the trigger's claim. Once the event is stored the executor resumes the
// task; a trigger run twice publishes an event the executor drops.
func (tr *Triggerer) publish(ctx context.Context, f firedEvent) {
	t := f.r.trigger
	data := mustJSON(f.ev)
	for attempt := 0; ; attempt++ {
		err := tr.q.PublishEvent(ctx, t.TIID, t.ID, data)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			// Not published: the claim stays and the trigger runs again
			// after a hand-back or a takeover.
			tr.log.Warn("event not published before stop", "trigger_id", t.ID, "err", err)
			f.r.mu.Lock()
			f.r.state = halted
			f.r.mu.Unlock()
			return
		}
		tr.log.Warn("publish trigger event", "trigger_id", t.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
		}
	}
	f.r.mu.Lock()
	rev := f.r.rev
	f.r.mu.Unlock()
	if err := tr.kv.DeleteAt(ctx, t.ID, rev); err != nil && ctx.Err() == nil {
		tr.log.Debug("retire trigger claim", "trigger_id", t.ID, "err", err)
	}
	tr.log.Info("trigger fired", "trigger_id", t.ID, "ti_id", t.TIID, "kind", t.Kind, "error", f.ev.Error)
	tr.forget(f.r)
}

// handBack marks r's claim as unowned so another triggerer claims it now.
func (tr *Triggerer) handBack(ctx context.Context, r *run) error {
	r.mu.Lock()
	rev := r.rev
	r.mu.Unlock()
	_, err := tr.kv.Update(ctx, r.trigger.ID, mustJSON(claim{Trigger: r.trigger}), rev)
	if err != nil {
		return err
	}
	return nil
}

// Snapshot returns the triggers held now, for operators.
func (tr *Triggerer) Snapshot() map[string]activity.Trigger {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[string]activity.Trigger, len(tr.running))
	for id, r := range tr.running {
		out[id] = r.trigger
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
