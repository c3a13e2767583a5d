package executor

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type fixture struct {
	t   *testing.T
	q   *queue.Client
	ex  *Executor
	srv *httptest.Server
	ec  *execution.Client
}

// newFixture starts an executor on a new NATS server; prepare, if given,
// changes it before it starts (a test clock).
func newFixture(t *testing.T, qcfg queue.Config, cfg Config, prepare ...func(*Executor)) *fixture {
	t.Helper()
	ns := natstest.RunServer(t)
	qc, err := queue.New(t.Context(), natstest.Connect(t, ns), qcfg)
	if err != nil {
		t.Fatal(err)
	}
	return startOn(t, qc, cfg, prepare...)
}

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now().UTC()} }

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// use makes the executor read the clock; pass it as a prepare func.
func (c *testClock) use(e *Executor) { e.now, e.tokens.now = c.Now, c.Now }

func startOn(t *testing.T, qc *queue.Client, cfg Config, prepare ...func(*Executor)) *fixture {
	t.Helper()
	if cfg.ScanInterval == 0 {
		cfg.ScanInterval = 50 * time.Millisecond
	}
	ex, srv := serveExecutor(t, qc, cfg, prepare...)
	ec, err := execution.NewClient(execution.ClientConfig{URL: srv.URL, RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, q: qc, ex: ex, srv: srv, ec: ec}
}

// serveExecutor starts an executor on qc, serves its handler over HTTP,
// and stops both when tb ends.
func serveExecutor(tb testing.TB, qc *queue.Client, cfg Config, prepare ...func(*Executor)) (*Executor, *httptest.Server) {
	tb.Helper()
	cfg.Queue = qc
	cfg.Logger = slog.New(slog.DiscardHandler)
	ex, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range prepare {
		p(ex)
	}
	if err := ex.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(ex.Handler())
	tb.Cleanup(func() {
		srv.Close()
		if err := ex.Stop(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return ex, srv
}

// take fetches the next activity of queue q as a worker would.
func (f *fixture) take(q string) (*activity.ExecuteTask, queue.Delivery) {
	f.t.Helper()
	cons, err := f.q.ActivityConsumer(f.t.Context(), q)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := queuetest.Next(cons, 5*time.Second)
	if err != nil {
		f.t.Fatalf("no activity on %s: %v", q, err)
	}
	a, err := activity.Decode(m.Data())
	if err != nil {
		f.t.Fatal(err)
	}
	return a.ExecuteTask, m
}

func (f *fixture) submit(spec activity.TaskSpec) *activity.TaskInstance {
	f.t.Helper()
	ti, err := f.ex.Submit(f.t.Context(), spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return ti
}

func (f *fixture) eventually(what string, cond func(*activity.TaskInstance) bool, id string) *activity.TaskInstance {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ti, err := f.ex.Get(f.t.Context(), id)
		if err == nil && cond(ti) {
			return ti
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s; last %+v, %v", what, ti, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var runReq = execution.RunRequest{Hostname: "h", PID: 7, WorkerID: "w"}

func TestRetryAfterFailureRunsNextTry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}},
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(200 * time.Millisecond)}})
	act, m := f.take("q")
	_ = m.Ack()
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(t.Context(), act.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	failedAt := time.Now()
	if err := f.ec.Task(ti.ID, rr.Token).State(t.Context(), execution.StateRequest{State: activity.StateUpForRetry, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}
	act2, m2 := f.take("q")
	_ = m2.Ack()
	if since := time.Since(failedAt); since < 200*time.Millisecond {
		t.Errorf("retry queued after %s, before its 200ms delay", since)
	}
	if act2.TI.TryNumber != 2 || act2.ID == act.ID {
		t.Fatalf("retry activity %+v, want try 2 with a new id", act2)
	}
	// The old try's tokens act no more.
	if _, err := f.ec.Run(t.Context(), act.Token, ti.ID, req); !errors.Is(err, execution.ErrConflict) {
		t.Errorf("run with try 1's workload token: %v, want 409", err)
	}
	if err := f.ec.Task(ti.ID, rr.Token).Heartbeat(t.Context(), execution.HeartbeatRequest{Hostname: "h", PID: 7, WorkerID: "w"}); !errors.Is(err, execution.ErrConflict) {
		t.Errorf("heartbeat with try 1's token: %v, want 409", err)
	}
	req.ActivityID = act2.ID
	rr2, err := f.ec.Run(t.Context(), act2.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	if rr2.ShouldRetry || rr2.MaxTries != 2 || rr2.TI.TryNumber != 2 {
		t.Errorf("run context %+v", rr2)
	}
	if err := f.ec.Task(ti.ID, rr2.Token).State(t.Context(), execution.StateRequest{State: activity.StateUpForRetry, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}
	got, _ := f.ex.Get(t.Context(), ti.ID)
	if got.State != activity.StateFailed || !strings.Contains(got.Reason, "no retries left") {
		t.Fatalf("after the last try: %s %q", got.State, got.Reason)
	}
}

// TestHeartbeatWritesOnlyWhenOld: a heartbeat writes the record only when
// its heartbeat_at is older than a quarter of the zombie threshold, a task
// heartbeating faster is never a zombie, and a heartbeat of a try that is
// over is still refused.
func TestHeartbeatWritesOnlyWhenOld(t *testing.T) {
	t.Parallel()
	const threshold = 2 * time.Second
	f := newFixture(t, queue.Config{}, Config{ZombieThreshold: threshold, ScanInterval: 50 * time.Millisecond})
	ti, tc := f.running(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	ranAt := time.Now()
	hb := execution.HeartbeatRequest{Hostname: "h", PID: 7, WorkerID: "w"}
	started, _ := f.ex.Get(t.Context(), ti.ID)
	age, err := tc.HeartbeatRecorded(t.Context(), hb)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(ranAt) < threshold/8 { // else a loaded machine took a quarter threshold: it may write
		if age <= 0 || age > threshold/4 {
			t.Errorf("heartbeat right after …/run: recorded one's age %s; want accepted, not written, the age of …/run's", age)
		}
		if got, _ := f.ex.Get(t.Context(), ti.ID); !got.HeartbeatAt.Equal(*started.HeartbeatAt) {
			t.Errorf("a heartbeat right after …/run wrote heartbeat_at %v (was %v)", got.HeartbeatAt, started.HeartbeatAt)
		}
	}
	// Heartbeats every threshold/8 for 2 thresholds: written now and then,
	// never a zombie.
	deadline := time.Now().Add(2 * threshold)
	writes := 0
	for time.Now().Before(deadline) {
		age, err := tc.HeartbeatRecorded(t.Context(), hb)
		if err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if age == 0 {
			writes++
		}
		time.Sleep(threshold / 8)
	}
	if writes == 0 {
		t.Error("no heartbeat over 2 thresholds was recorded")
	}
	got, _ := f.ex.Get(t.Context(), ti.ID)
	if got.State != activity.StateRunning || !got.HeartbeatAt.After(*started.HeartbeatAt) {
		t.Fatalf("after 2 thresholds of heartbeats: %s, heartbeat_at %v (started %v)", got.State, got.HeartbeatAt, started.HeartbeatAt)
	}
	if err := tc.State(t.Context(), execution.StateRequest{State: activity.StateSuccess, EndDate: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := tc.Heartbeat(t.Context(), hb); !errors.Is(err, execution.ErrConflict) && !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("heartbeat of a try that is over: %v, want a refusal", err)
	}
}

func TestZombieIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{ZombieThreshold: 300 * time.Millisecond})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}},
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(10 * time.Millisecond)}})
	act, m := f.take("q")
	_ = m.Ack()
	req := runReq
	req.ActivityID = act.ID
	if _, err := f.ec.Run(t.Context(), act.Token, ti.ID, req); err != nil {
		t.Fatal(err)
	}
	got := f.eventually("try 2 queued", func(ti *activity.TaskInstance) bool { return ti.TryNumber == 2 }, ti.ID)
	if !strings.Contains(got.Tries[0].Reason, "zombie") {
		t.Errorf("try 1 reason %q, want zombie", got.Tries[0].Reason)
	}
}

func TestExhaustedDeliveriesFailTheTask(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{ActivityMaxDeliver: 2, ActivityAckWait: time.Second}, Config{})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}, RetryPolicy: activity.RetryPolicy{Retries: 3}})
	for range 2 {
		_, m := f.take("q")
		_ = m.Nak()
	}
	// A worker's next pull finds the activity over its deliveries.
	cons, err := f.q.ActivityConsumer(t.Context(), "q")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queuetest.Next(cons, 500*time.Millisecond); !errors.Is(err, queue.ErrTimeout) {
		t.Errorf("activity delivered past its max deliveries (%v)", err)
	}
	got := f.eventually("failed", func(ti *activity.TaskInstance) bool { return ti.State == activity.StateFailed }, ti.ID)
	if !strings.Contains(got.Reason, "deliveries") {
		t.Errorf("reason %q, want deliveries exhausted", got.Reason)
	}
}

func TestExpiredAndRefreshedTokens(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newFixture(t, queue.Config{}, Config{ExecutionTokenTTL: time.Minute, ZombieThreshold: time.Hour}, clock.use)
	advance := clock.advance

	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	act, m := f.take("q")
	_ = m.Ack()
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(t.Context(), act.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	tc := f.ec.Task(ti.ID, rr.Token)
	hb := execution.HeartbeatRequest{Hostname: "h", PID: 7, WorkerID: "w"}
	advance(40 * time.Second) // past half the TTL: the answer carries a fresh token
	if err := tc.Heartbeat(t.Context(), hb); err != nil {
		t.Fatal(err)
	}
	if tc.Token() == rr.Token {
		t.Fatal("token not refreshed past half its life")
	}
	advance(40 * time.Second) // the first token is expired, the refreshed one not
	if err := f.ec.Task(ti.ID, rr.Token).Heartbeat(t.Context(), hb); !errors.Is(err, execution.ErrUnauthorized) {
		t.Errorf("expired token: %v, want 401", err)
	}
	if err := tc.Heartbeat(t.Context(), hb); err != nil {
		t.Errorf("refreshed token: %v", err)
	}
}

// Two executors on one NATS race to run the same task: exactly one wins.
func TestTwoExecutorsOneWinner(t *testing.T) {
	t.Parallel()
	f1 := newFixture(t, queue.Config{}, Config{})
	f2 := startOn(t, f1.q, Config{})
	for i := range 10 {
		ti := f1.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
		act, m := f1.take("q")
		_ = m.Ack()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, ec := range []*execution.Client{f1.ec, f2.ec} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := execution.RunRequest{Hostname: "h", PID: j + 1, WorkerID: "w" + string(rune('a'+j)), ActivityID: act.ID}
				_, errs[j] = ec.Run(context.Background(), act.Token, ti.ID, req)
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: errors %v / %v, want exactly one winner", i, errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, execution.ErrConflict) {
				t.Fatalf("loser got %v, want 409", err)
			}
		}
	}
}

func TestPublicAPIAuthAndErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{OperatorToken: "op-secret"})
	do := func(method, path, token, body string) (int, execution.ErrorBody) {
		req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb execution.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no_token", "GET", "/api/v1/task-instances", "", "", 401},
		{"wrong_token", "GET", "/api/v1/task-instances", "nope", "", 401},
		{"list", "GET", "/api/v1/task-instances?state=queued", "op-secret", "", 200},
		{"bad_state", "GET", "/api/v1/task-instances?state=bogus", "op-secret", "", 400},
		{"unknown_ti", "GET", "/api/v1/task-instances/nope", "op-secret", "", 404},
		{"unknown_route", "GET", "/api/v1/nope", "op-secret", "", 404},
		{"bad_json", "POST", "/api/v1/activities", "op-secret", "{", 400},
		{"cancel_unknown", "POST", "/api/v1/task-instances/nope/cancel", "op-secret", "", 404},
		{"variable_missing", "GET", "/api/v1/variables/nope", "op-secret", "", 404},
		{"connection_no_type", "PUT", "/api/v1/connections/db", "op-secret", `{"host":"x"}`, 400},
		{"exec_no_token", "PATCH", "/execution/task-instances/x/run", "", "{}", 401},
		{"exec_operator_token", "PATCH", "/execution/task-instances/x/run", "op-secret", "{}", 401},
		{"exec_variable_no_token", "GET", "/execution/variables/x", "", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, eb := do(tc.method, tc.path, tc.token, tc.body)
			if status != tc.want {
				t.Errorf("%s %s: %d %+v, want %d", tc.method, tc.path, status, eb, tc.want)
			}
			if status >= 400 && (eb.Error == "" || eb.Detail == "") {
				t.Errorf("error answer without a clear message: %+v", eb)
			}
		})
	}
}

// An executor that stopped between recording a task and publishing its
// activity left it queued with nothing on the queue: the next executor to
// start publishes it, and a task that was published already is not
// duplicated on the queue.
func TestStartRepublishesQueuedTasks(t *testing.T) {
	t.Parallel()
	f1 := newFixture(t, queue.Config{}, Config{})
	spec := activity.TaskSpec{Queue: "lost", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}.WithDefaults(time.Now())
	lost := activity.NewTaskInstance("01a20000-0000-7000-8000-000000000001", spec, time.Now())
	lost.NextActivityID()
	if err := f1.ex.store.create(t.Context(), lost); err != nil {
		t.Fatal(err)
	}
	published := f1.submit(activity.TaskSpec{Queue: "kept", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})

	f2 := startOn(t, f1.q, Config{})
	act, m := f2.take("lost")
	_ = m.Ack()
	if act.ID != lost.ActivityID || act.TI.ID != lost.ID {
		t.Fatalf("activity %s for %s, want %s for %s", act.ID, act.TI.ID, lost.ActivityID, lost.ID)
	}
	if _, err := f2.ec.Run(t.Context(), act.Token, lost.ID, execution.RunRequest{Hostname: "h", PID: 1, WorkerID: "w", ActivityID: act.ID}); err != nil {
		t.Fatalf("run the republished activity: %v", err)
	}

	_, m = f2.take("kept")
	_ = m.Ack()
	cons, err := f2.q.ActivityConsumer(t.Context(), "kept")
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := queuetest.Next(cons, 300*time.Millisecond); err == nil {
		t.Fatalf("a second copy of %s's activity is on the queue: %s", published.ID, msg.Data())
	}
}

// A …/run that overtakes the record being stored (the activity is published
// while the record is created) waits for it instead of answering 404.
func TestMutateWaitsForACreateUnderWay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	s := f.ex.store
	spec := activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}.WithDefaults(time.Now())
	ti := activity.NewTaskInstance("01a20000-0000-7000-8000-0000000000aa", spec, time.Now())
	done := make(chan struct{})
	s.mu.Lock()
	s.creating[ti.ID] = done
	s.mu.Unlock()
	res := make(chan error, 1)
	go func() {
		_, err := s.mutate(t.Context(), ti.ID, func(r *activity.TaskInstance) error {
			return r.SetState(activity.StateRunning, "", time.Now())
		})
		res <- err
	}()
	select {
	case err := <-res:
		t.Fatalf("mutate ended before the record was created: %v", err)
	case <-time.After(100 * time.Millisecond): // it must still be waiting: a bound, not a wait for a condition
	}
	b, _ := ti.MarshalRecord()
	rev, err := s.kv.Create(t.Context(), ti.ID, b)
	if err != nil {
		t.Fatal(err)
	}
	s.remember(ti, b, rev, nil)
	s.mu.Lock()
	delete(s.creating, ti.ID)
	s.mu.Unlock()
	close(done)
	if err := <-res; err != nil {
		t.Fatalf("mutate after the create: %v", err)
	}
	if _, err := s.mutate(t.Context(), "01a20000-0000-7000-8000-0000000000bb", func(*activity.TaskInstance) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("mutate of a record never created: %v, want not found", err)
	}
}
