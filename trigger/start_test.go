package trigger_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/trigger"
)

// waitMax bounds every wait for something that should happen: generous,
// since it only delays a failure and a loaded -race run can take seconds.
const waitMax = 30 * time.Second

// quietEnv is an Env that logs nowhere.
func quietEnv() *trigger.Env {
	return &trigger.Env{Logger: slog.New(slog.DiscardHandler)}
}

// recorder collects the events of one started trigger.
type recorder struct {
	calls  atomic.Int32
	events chan trigger.Event
}

func newRecorder() *recorder { return &recorder{events: make(chan trigger.Event, 2)} }

func (r *recorder) fire(ev trigger.Event) {
	r.calls.Add(1)
	r.events <- ev
}

// next waits for the event.
func (r *recorder) next(t *testing.T) trigger.Event {
	t.Helper()
	select {
	case ev := <-r.events:
		return ev
	case <-time.After(waitMax):
		t.Fatal("trigger did not fire")
		return trigger.Event{}
	}
}

// none checks that nothing fires within d.
func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-r.events:
		t.Fatalf("trigger fired: %+v", ev)
	case <-time.After(d):
	}
}

// mustNormalize normalizes a trigger at the real clock's now.
func mustNormalize(t testing.TB, classpath string, kw map[string]any) activity.Trigger {
	t.Helper()
	tr, err := trigger.Normalize(activity.Trigger{ID: "tr", Classpath: classpath, Kwargs: kw, DeferredAt: time.Now()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// mustStart starts tr and stops it when the test ends.
func mustStart(t *testing.T, env *trigger.Env, tr activity.Trigger) (*recorder, func()) {
	t.Helper()
	r := newRecorder()
	stop, err := trigger.Start(env, tr, r.fire)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return r, stop
}

func TestStartDateTimePast(t *testing.T) {
	t.Parallel()
	moment := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	r, _ := mustStart(t, nil, mustNormalize(t, "datetime", map[string]any{"moment": moment}))
	ev := r.next(t)
	p, _ := ev.Payload.(map[string]any)
	if ev.Err != "" || p["moment"] != moment {
		t.Fatalf("event %+v, want moment %s", ev, moment)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(p["fired_at"])); err != nil {
		t.Fatalf("fired_at: %v", err)
	}
}

func TestStartDateTimeSoon(t *testing.T) {
	t.Parallel()
	m := time.Now().Add(50 * time.Millisecond)
	r := newRecorder()
	var firedAt time.Time
	stop, err := trigger.Start(nil, mustNormalize(t, "datetime", map[string]any{"moment": m.Format(time.RFC3339Nano)}), func(ev trigger.Event) {
		firedAt = time.Now()
		r.fire(ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r.next(t)
	if firedAt.Before(m) || firedAt.After(m.Add(200*time.Millisecond)) {
		t.Fatalf("fired at %s, %s after the moment; want within [0, 200ms]", firedAt, firedAt.Sub(m))
	}
}

func TestStartTimeDelta(t *testing.T) {
	t.Parallel()
	r, _ := mustStart(t, nil, mustNormalize(t, "timedelta", map[string]any{"delta": 0.01}))
	if ev := r.next(t); ev.Err != "" {
		t.Fatalf("event %+v", ev)
	}
}

func TestStartStopBeforeFire(t *testing.T) {
	t.Parallel()
	m := time.Now().Add(20 * time.Millisecond)
	r, stop := mustStart(t, nil, mustNormalize(t, "datetime", map[string]any{"moment": m.Format(time.RFC3339Nano)}))
	stop()
	stop() // idempotent
	r.none(t, time.Until(m)+100*time.Millisecond)
}

// TestStartFiresOnce races stop against triggers firing at once, and
// checks every trigger fires at most once and one never stopped fires.
func TestStartFiresOnce(t *testing.T) {
	t.Parallel()
	const n = 1000
	past := mustNormalize(t, "datetime", map[string]any{"moment": "2020-01-01T00:00:00Z"})
	var calls [n]atomic.Int32
	var stopping, unstopped sync.WaitGroup
	unstopped.Add(n / 2)
	for i := range n {
		stop, err := trigger.Start(nil, past, func(trigger.Event) {
			if calls[i].Add(1) == 1 && i%2 == 1 {
				unstopped.Done()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			stopping.Go(func() { stop(); stop() })
		}
	}
	stopping.Wait()
	done := make(chan struct{})
	go func() { unstopped.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitMax):
		t.Fatal("triggers not stopped did not all fire")
	}
	for i := range calls {
		if c := calls[i].Load(); c > 1 {
			t.Fatalf("trigger %d fired %d times", i, c)
		}
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tr   activity.Trigger
	}{
		{"unknown_kind", activity.Trigger{Kind: "cron", Kwargs: map[string]any{}}},
		{"unknown_classpath", activity.Trigger{Classpath: "x.Y"}},
		{"datetime_no_moment", activity.Trigger{Kind: "datetime"}},
		{"datetime_bad_moment", activity.Trigger{Kind: "datetime", Kwargs: map[string]any{"moment": 5}}},
		{"timedelta_not_normalized", activity.Trigger{Kind: "timedelta", Kwargs: map[string]any{"delta": "5s"}}},
		{"http_bad_url", activity.Trigger{Kind: "http", Kwargs: map[string]any{"url": "nope"}}},
		{"file_bad_glob", activity.Trigger{Kind: "file", Kwargs: map[string]any{"path": "["}}},
		{"event_bad_name", activity.Trigger{Kind: "event", Kwargs: map[string]any{"name": "a b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stop, err := trigger.Start(nil, tc.tr, func(trigger.Event) { t.Error("fired") })
			if !errors.Is(err, trigger.ErrInvalid) || stop != nil {
				t.Fatalf("Start = %v, %v; want an error wrapping ErrInvalid", stop != nil, err)
			}
		})
	}
	if _, err := trigger.Start(nil, mustNormalize(t, "event", map[string]any{"name": "x"}), nil); err == nil {
		t.Fatal("Start with a nil fire: no error")
	}
}

func TestStartHTTP(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s ready-MARKER %s %s", r.Method, r.Header.Get("X-Token"), b)
	}))
	defer srv.Close()
	env := quietEnv()
	env.HTTPClient = srv.Client()
	tr := mustNormalize(t, "http", map[string]any{
		"url": srv.URL + "/ready", "method": "put", "body": "req-body", "headers": map[string]any{"x-token": "tok"},
		"body_contains": "ready-MARKER", "interval": "10ms",
	})
	r, _ := mustStart(t, env, tr)
	ev := r.next(t)
	want := map[string]any{"status": 200, "body": "PUT ready-MARKER tok req-body"}
	if ev.Err != "" || !reflect.DeepEqual(ev.Payload, want) {
		t.Fatalf("event %+v, want payload %v", ev, want)
	}
	if got := n.Load(); got != 3 {
		t.Errorf("server saw %d requests, want 3", got)
	}
}

// TestStartHTTPExpected5xx checks that an expected 5xx status is not
// retried.
func TestStartHTTPExpected5xx(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	env := quietEnv()
	env.HTTPClient = srv.Client()
	r, _ := mustStart(t, env, mustNormalize(t, "http", map[string]any{"url": srv.URL, "status": 503, "interval": "10ms"}))
	ev := r.next(t)
	if p, _ := ev.Payload.(map[string]any); p["status"] != 503 || n.Load() != 1 {
		t.Fatalf("event %+v after %d requests, want status 503 after 1", ev, n.Load())
	}
}

func TestStartHTTPBodyMismatch(t *testing.T) {
	t.Parallel()
	polled := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "not yet")
		select {
		case polled <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	env := quietEnv()
	env.HTTPClient = srv.Client()
	r, stop := mustStart(t, env, mustNormalize(t, "http", map[string]any{"url": srv.URL, "body_contains": "MARKER", "interval": "10ms"}))
	for range 3 {
		select {
		case <-polled:
		case <-time.After(waitMax):
			t.Fatal("no poll")
		}
	}
	stop()
	r.none(t, 50*time.Millisecond)
}

// TestStartHTTPStopCancelsRequest checks that stop cancels a request in
// flight.
func TestStartHTTPStopCancelsRequest(t *testing.T) {
	t.Parallel()
	entered, cancelled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-r.Context().Done()
		close(cancelled)
	}))
	defer srv.Close()
	env := quietEnv()
	env.HTTPClient = srv.Client()
	r, stop := mustStart(t, env, mustNormalize(t, "http", map[string]any{"url": srv.URL}))
	select {
	case <-entered:
	case <-time.After(waitMax):
		t.Fatal("no request")
	}
	stop()
	select {
	case <-cancelled:
	case <-time.After(waitMax):
		t.Fatal("request not cancelled by stop")
	}
	r.none(t, 20*time.Millisecond)
}

func TestStartFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, _ := mustStart(t, nil, mustNormalize(t, "file", map[string]any{"path": filepath.Join(dir, "*.done"), "interval": "10ms"}))
	path := filepath.Join(dir, "run1.done")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ev := r.next(t)
	want := map[string]any{"path": path, "matches": []any{path}}
	if ev.Err != "" || !reflect.DeepEqual(ev.Payload, want) {
		t.Fatalf("event %+v, want payload %v", ev, want)
	}
}

func TestStartFileStop(t *testing.T) {
	t.Parallel()
	r, stop := mustStart(t, nil, mustNormalize(t, "file", map[string]any{"path": filepath.Join(t.TempDir(), "never"), "interval": "10ms"}))
	stop()
	r.none(t, 30*time.Millisecond)
}

// events is an in-memory ExternalEvents.
type events struct {
	mu   sync.Mutex
	sent map[string][]sentEvent
	subs map[*subscription]struct{}
}

type sentEvent struct {
	at      time.Time
	payload any
}

type subscription struct {
	name  string
	since time.Time
	fn    func(any)
}

func newEvents() *events {
	return &events{sent: map[string][]sentEvent{}, subs: map[*subscription]struct{}{}}
}

// Subscribe delivers an event sent already at once, on the caller's
// goroutine.
func (e *events) Subscribe(name string, since time.Time, fn func(payload any)) (cancel func()) {
	e.mu.Lock()
	for _, s := range e.sent[name] {
		if !s.at.Before(since) {
			e.mu.Unlock()
			fn(s.payload)
			return func() {}
		}
	}
	sub := &subscription{name: name, since: since, fn: fn}
	e.subs[sub] = struct{}{}
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.subs, sub)
		e.mu.Unlock()
	}
}

func (e *events) send(name string, at time.Time, payload any) {
	e.mu.Lock()
	e.sent[name] = append(e.sent[name], sentEvent{at, payload})
	var due []*subscription
	for sub := range e.subs {
		if sub.name == name && !at.Before(sub.since) {
			due = append(due, sub)
			delete(e.subs, sub)
		}
	}
	e.mu.Unlock()
	for _, sub := range due {
		sub.fn(payload)
	}
}

func (e *events) subscribers() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}

func TestStartEvent(t *testing.T) {
	t.Parallel()
	deferred := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tr := mustNormalize(t, "event", map[string]any{"name": "orders:ready"})
	tr.DeferredAt = deferred
	payload := func(ev trigger.Event) any {
		p, _ := ev.Payload.(map[string]any)
		if ev.Err != "" || p["name"] != "orders:ready" {
			t.Fatalf("event %+v", ev)
		}
		return p["payload"]
	}

	t.Run("sent_after_start", func(t *testing.T) {
		ev := newEvents()
		env := quietEnv()
		env.Events = ev
		r, _ := mustStart(t, env, tr)
		ev.send("orders:other", deferred.Add(time.Second), "wrong name")
		ev.send("orders:ready", deferred.Add(time.Second), map[string]any{"n": 1})
		if got := payload(r.next(t)); !reflect.DeepEqual(got, map[string]any{"n": 1}) {
			t.Fatalf("payload %v", got)
		}
	})
	t.Run("sent_before_start", func(t *testing.T) {
		ev := newEvents()
		env := quietEnv()
		env.Events = ev
		ev.send("orders:ready", deferred, "at since")
		r, _ := mustStart(t, env, tr)
		if got := payload(r.next(t)); got != "at since" {
			t.Fatalf("payload %v", got)
		}
	})
	t.Run("sent_before_since", func(t *testing.T) {
		ev := newEvents()
		env := quietEnv()
		env.Events = ev
		ev.send("orders:ready", deferred.Add(-time.Nanosecond), "too old")
		r, _ := mustStart(t, env, tr)
		ev.send("orders:ready", deferred.Add(time.Minute), "new")
		if got := payload(r.next(t)); got != "new" {
			t.Fatalf("payload %v, want the event sent after since", got)
		}
	})
	t.Run("stop", func(t *testing.T) {
		ev := newEvents()
		env := quietEnv()
		env.Events = ev
		r, stop := mustStart(t, env, tr)
		stop()
		if n := ev.subscribers(); n != 0 {
			t.Fatalf("%d subscribers after stop", n)
		}
		ev.send("orders:ready", deferred, "late")
		r.none(t, 10*time.Millisecond)
	})
	t.Run("no_source", func(t *testing.T) {
		r, _ := mustStart(t, quietEnv(), tr)
		if ev := r.next(t); ev.Err != "no external event source" {
			t.Fatalf("event %+v", ev)
		}
	})
}

// TestManyTimers starts 100,000 datetime triggers an hour away: they cost
// no goroutine and a few hundred bytes each.
func TestManyTimers(t *testing.T) {
	const n = 100_000
	tr := mustNormalize(t, "datetime", map[string]any{"moment": time.Now().Add(time.Hour).Format(time.RFC3339Nano)})
	fire := func(trigger.Event) { t.Error("fired") }
	stops := make([]func(), 0, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	for range n {
		stop, err := trigger.Start(nil, tr, fire)
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	g1 := runtime.NumGoroutine()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if g1-g0 > 5 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	t.Logf("%d waiting datetime triggers: %d bytes each (heap in use), %d goroutines before, %d after",
		n, (int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, g0, g1)
	for _, stop := range stops {
		stop()
	}
}

func BenchmarkStartTimers(b *testing.B) {
	tr := mustNormalize(b, "datetime", map[string]any{"moment": time.Now().Add(time.Hour).Format(time.RFC3339Nano)})
	fire := func(trigger.Event) {}
	stops := make([]func(), 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		stop, err := trigger.Start(nil, tr, fire)
		if err != nil {
			b.Fatal(err)
		}
		stops = append(stops, stop)
	}
	b.StopTimer()
	for _, stop := range stops {
		stop()
	}
}

// pacer is a Limiter that lets one request go every gap and records the
// keys asked for.
type pacer struct {
	gap  time.Duration
	mu   sync.Mutex
	next time.Time
	keys []string
}

func (p *pacer) Acquire(ctx context.Context, key string) (func(), error) {
	p.mu.Lock()
	p.keys = append(p.keys, key)
	now := time.Now()
	at := now
	if p.next.After(now) {
		at = p.next
	}
	p.next = at.Add(p.gap)
	p.mu.Unlock()
	select {
	case <-time.After(at.Sub(now)):
		return func() {}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pacer) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.keys)
}

// A file trigger with a rate_key looks only when its limit lets it; one
// without looks at its interval, unpaced.
func TestStartFileRateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lim := &pacer{gap: 100 * time.Millisecond}
	env := quietEnv()
	env.Limiter = lim
	tr := mustNormalize(t, "file", map[string]any{"path": filepath.Join(dir, "*.done"), "interval": "10ms", "rate_key": "nfs-share"})
	if tr.Kwargs["rate_key"] != "nfs-share" {
		t.Fatalf("normalized kwargs %v lost rate_key", tr.Kwargs)
	}
	start := time.Now()
	r, _ := mustStart(t, env, tr)
	for len(lim.asked()) < 4 {
		if time.Since(start) > waitMax {
			t.Fatalf("the file trigger asked its limit %d times", len(lim.asked()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The fourth look asks once the third went, 200ms in at 10/s; the
	// 10ms interval alone would have looked 20 times by then.
	if took := time.Since(start); took < 190*time.Millisecond {
		t.Errorf("4 looks paced at 10/s asked within %v", took)
	}
	path := filepath.Join(dir, "a.done")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ev := r.next(t); ev.Err != "" || ev.Payload.(map[string]any)["path"] != path {
		t.Fatalf("event %+v", ev)
	}
	for _, k := range lim.asked() {
		if k != "nfs-share" {
			t.Fatalf("looked under key %q, want nfs-share", k)
		}
	}

	unkeyed := &pacer{gap: time.Hour}
	env2 := quietEnv()
	env2.Limiter = unkeyed
	r2, _ := mustStart(t, env2, mustNormalize(t, "file", map[string]any{"path": path, "interval": "10ms"}))
	r2.next(t)
	if n := len(unkeyed.asked()); n != 0 {
		t.Fatalf("a file trigger without rate_key asked the limiter %d times", n)
	}
	if _, err := trigger.Normalize(activity.Trigger{Classpath: "file", Kwargs: map[string]any{"path": path, "rate_key": "a/b"}}, time.Now()); err == nil {
		t.Fatal("rate_key with a slash accepted")
	}
}
