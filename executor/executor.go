package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dashboard"
	"github.com/taskwire/taskwire/queue"
)

const signingKeyName = "jwt_signing_key"

// Executor is the scheduler-side service. Create it with New, then Start;
// serve Handler over HTTP; Stop when done.
type Executor struct {
	cfg    Config
	q      *queue.Client
	log    *slog.Logger
	store  *store
	tokens tokens
	sealer *sealer
	vars   queue.Bucket
	conns  queue.Bucket
	xcom   queue.Bucket
	// workers and triggerers are the registries (registry_api.go).
	workers    queue.Bucket
	triggerers queue.Bucket
	metrics    *Metrics
	// dags is the scheduler side: DAGs and their runs (dagrun*.go).
	dags *dags
	// pools is admission to pools of slots (pools.go).
	pools *pools
	now   func() time.Time
	// unpublished holds, by task-instance id, what could not be published
	// (NATS away) for a task that waits on it: the scan publishes it again
	// (see republishFailed).
	unpublished sync.Map // string → unpublished
	// inDoubt holds, by task-instance id, the records whose last write
	// failed with its outcome unknown (see store.inDoubt): the scan reads
	// them back and publishes what their state waits on
	// (reconcileInDoubt).
	inDoubt sync.Map // string → *doubt
	// earlyEvents counts trigger events delivered before their task's
	// deferral was recorded (put back: settleFailedEvent).
	earlyEvents atomic.Int64
	// storage is the last StorageCheck's answer (storage.go).
	storage atomic.Pointer[storageState]

	mu       sync.Mutex
	started  bool
	stopping bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// The record cache's watch has a context of its own: Stop ends it
	// last, once it has applied this executor's last writes, and then
	// saves the counts' snapshot (see openindex.go).
	cancelStore context.CancelFunc
	storeDone   chan struct{}
	storeOnce   sync.Once
	stopOnce    sync.Once
	stops       []func()
}

// New checks cfg and returns an Executor that is not started.
func New(cfg Config) (*Executor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	e := &Executor{
		cfg:        cfg,
		q:          cfg.Queue,
		log:        cfg.Logger,
		store:      newStore(cfg.Queue.Bucket(queue.BucketTaskInstances), cfg.Queue.Bucket(queue.BucketConfig), cfg.RecordCache, cfg.Logger),
		vars:       cfg.Queue.Bucket(queue.BucketVariables),
		conns:      cfg.Queue.Bucket(queue.BucketConnections),
		xcom:       cfg.Queue.Bucket(queue.BucketXCom),
		workers:    cfg.Queue.Bucket(queue.BucketWorkers),
		triggerers: cfg.Queue.Bucket(queue.BucketTriggerers),
		metrics:    cfg.Metrics,
		now:        func() time.Time { return time.Now().UTC() },
	}
	e.tokens = tokens{key: cfg.SigningKey, now: e.now}
	e.pools = newPools(cfg.Queue.Bucket(queue.BucketPools), e.store, cfg.Logger)
	e.pools.publish = func(ctx context.Context, ti *activity.TaskInstance) (func() error, error) {
		failed := func(err error) error {
			if err != nil {
				e.unpublished.Store(ti.ID, unpublished{activityID: ti.ActivityID})
			}
			return err
		}
		q, data, err := e.executeTask(ti)
		if err != nil {
			return nil, failed(err)
		}
		wait, err := e.q.PublishActivityAsync(ctx, q, ti.ActivityID, data)
		if err != nil {
			return nil, failed(err)
		}
		return func() error { return failed(wait()) }, nil
	}
	e.store.subscribe(e.pools.observe)
	e.store.forget = e.pools.forget
	e.store.inDoubt = e.doubtWrite
	e.metrics.setPools(e.Pools)
	return e, nil
}

// Start loads the signing key and the record cache, and starts the retry
// timer consumer, the max-deliveries listener and the zombie/timeout scan.
// It returns once the cache is loaded.
func (e *Executor) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("executor: already started")
	}
	if len(e.tokens.key) == 0 {
		key, err := e.sharedKey(ctx, signingKeyName)
		if err != nil {
			return err
		}
		e.tokens.key = key
	}
	secret := e.cfg.SecretKey
	if len(secret) == 0 {
		var err error
		if secret, err = e.sharedSecretKey(ctx); err != nil {
			return err
		}
		e.log.Warn("no secret key given: connections and variables are sealed with a key kept in the NATS config bucket; give one (executor serve --secret-key-file) to keep it apart from the data")
	}
	sl, err := newSealer(secret)
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	e.sealer = sl
	if err := e.startDags(ctx); err != nil {
		return err
	}
	runCtx, runCancel := context.WithCancel(context.Background())
	e.cancel = runCancel
	storeCtx, cancelStore := context.WithCancel(context.Background())
	e.cancelStore, e.storeDone = cancelStore, make(chan struct{})
	storeStarted := false
	// cancel ends everything Start started, for its error returns.
	cancel := func() {
		runCancel()
		cancelStore()
		if storeStarted {
			<-e.storeDone
		}
	}

	// Each cache's watch runs until runCtx ends; the next starts once the
	// one before has loaded.
	watchErr := make(chan error, 2)
	for i, watch := range []func(context.Context, chan<- struct{}) error{e.pools.watch, e.store.watch} {
		ready := make(chan struct{})
		if i == 1 {
			storeStarted = true
			go func() {
				defer close(e.storeDone)
				if err := watch(storeCtx, ready); err != nil {
					watchErr <- err
				}
			}()
		} else {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				if err := watch(runCtx, ready); err != nil {
					watchErr <- err
				}
			}()
		}
		select {
		case <-ready:
		case err := <-watchErr:
			cancel()
			e.wg.Wait()
			return err
		case <-ctx.Done():
			cancel()
			e.wg.Wait()
			return ctx.Err()
		}
	}

	cc, err := e.q.ConsumeTimers(ctx, timerRetry, func(m queue.Delivery) { e.onRetryTimer(runCtx, m) })
	if err != nil {
		cancel()
		e.wg.Wait()
		return fmt.Errorf("executor: consume retry timers: %w", err)
	}
	e.stops = append(e.stops, cc.Stop)
	sc, err := e.q.ConsumeTimers(ctx, timerSchedule, func(m queue.Delivery) {
		e.onScheduleTimer(runCtx, m.Ack, func() error { return m.NakWithDelay(time.Second) }, m.Term, m.Data())
	})
	if err != nil {
		cc.Stop()
		cancel()
		e.wg.Wait()
		return fmt.Errorf("executor: consume schedule timers: %w", err)
	}
	e.stops = append(e.stops, sc.Stop)
	unsub, err := e.q.OnMaxDeliveries(func(stream string, seq uint64) {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.onMaxDeliveries(runCtx, seq)
		}()
	})
	if err != nil {
		cc.Stop()
		cancel()
		e.wg.Wait()
		return fmt.Errorf("executor: max-deliveries advisories: %w", err)
	}
	e.stops = append(e.stops, unsub)
	ec, err := e.q.ConsumeEvents(ctx, func(m queue.Delivery) { e.onEvent(runCtx, m) })
	if err == nil {
		e.stops = append(e.stops, ec.Stop)
	}
	if err != nil {
		for _, f := range e.stops {
			f()
		}
		cancel()
		e.wg.Wait()
		return fmt.Errorf("executor: consume trigger events: %w", err)
	}

	e.wg.Add(4)
	go func() {
		defer e.wg.Done()
		e.watchStorage(runCtx)
	}()
	go func() {
		defer e.wg.Done()
		e.pools.run(runCtx)
	}()
	go func() {
		defer e.wg.Done()
		e.retentionLoop(runCtx)
	}()
	go func() {
		defer e.wg.Done()
		e.republishQueued(runCtx)
		e.republishDeferred(runCtx)
		e.scanRuns(runCtx)
		e.scanLoop(runCtx)
	}()
	e.started = true
	e.log.Info("executor started", "zombie_threshold", e.cfg.ZombieThreshold,
		"execution_token_ttl", e.cfg.ExecutionTokenTTL, "operator_token", e.cfg.OperatorToken != "")
	return nil
}

// Ready says why the executor cannot serve yet, or nil: it is started (its
// record cache loaded, its consumers running), not stopping, and connected
// to NATS.
func (e *Executor) Ready() error {
	e.mu.Lock()
	started, stopping := e.started, e.stopping
	e.mu.Unlock()
	switch {
	case !started:
		return errors.New("executor not started")
	case stopping:
		return errors.New("executor stopping")
	}
	return e.q.Connected()
}

// Stop stops the background work and waits for it. Idempotent.
func (e *Executor) Stop(ctx context.Context) error {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		return nil
	}
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	e.stopOnce.Do(func() {
		for _, f := range e.stops {
			f()
		}
		e.cancel()
	})
	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		e.stopDags()
		e.storeOnce.Do(func() { e.stopStore(ctx) })
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("executor: stop: %w", ctx.Err())
	}
}

// stopStore ends the record cache's watch once it has caught up with the
// bucket (at most storeSettle), then saves the counts' snapshot, so that
// the next start need not read every record.
func (e *Executor) stopStore(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, storeSettle)
	defer cancel()
	e.store.settle(sctx)
	e.cancelStore()
	<-e.storeDone
	if _, err := e.store.saveCounts(sctx); err != nil {
		e.log.Warn("save the task-instance counts", "err", err)
	}
}

// storeSettle bounds stopStore.
const storeSettle = 5 * time.Second

// Handler serves the public API (/api/v1/), the Execution API (/execution/),
// /healthz, and the web dashboard at / and /ui/ (package dashboard; its
// page needs no token, the API calls it makes do).
func (e *Executor) Handler() http.Handler { return e.routes().ServeMux }

// routes registers every route (the OpenAPI test lists them).
func (e *Executor) routes() *routeMux {
	mux := newRouteMux()
	e.routeExecution(mux)
	e.routePublic(mux)
	mux.HandleFunc("GET /api/v1/openapi.json", e.handleOpenAPI)
	mux.HandleFunc("/execution/", e.apiFallback(mux))
	mux.Handle("/", dashboard.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
