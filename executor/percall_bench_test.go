package executor

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// BenchmarkRunAndState is a worker's calls per task (…/run, then …/state
// success) from 8 goroutines against an executor on an in-process NATS
// server; cpu-ns/op is the process's CPU per task: the client, the
// executor and NATS (two HTTP round trips and two KV writes, each seen by
// the executor's watch). The submits and pulls before are not counted.
func BenchmarkRunAndState(b *testing.B) {
	f := newBenchFixture(b)
	acts := make(chan *activity.ExecuteTask, b.N)
	for range b.N {
		if _, err := f.ex.Submit(b.Context(), activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}); err != nil {
			b.Fatal(err)
		}
	}
	cons, err := f.q.ActivityConsumer(b.Context(), "q")
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		m, err := queuetest.Next(cons, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		a, err := activity.Decode(m.Data())
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Ack()
		acts <- a.ExecuteTask
	}
	close(acts)
	inParallel(b, func() {
		for a := range acts {
			req := runReq
			req.ActivityID = a.ID
			rr, err := f.ec.Run(b.Context(), a.Token, a.TI.ID, req)
			if err != nil {
				b.Error(err)
				return
			}
			if err := f.ec.Task(a.TI.ID, rr.Token).State(b.Context(), execution.StateRequest{State: activity.StateSuccess, EndDate: time.Now()}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// inParallel runs work in 8 goroutines as the timed part of b and reports
// the process's CPU (user + system) per op as cpu-ns/op.
func inParallel(b *testing.B, work func()) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(work)
	}
	wg.Wait()
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

type benchFixture struct {
	q   *queue.Client
	ex  *Executor
	srv *httptest.Server
	// ec is a worker's Execution API client of the executor.
	ec *execution.Client
}

func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	ns := natstest.RunServer(b)
	qc, err := queue.New(b.Context(), natstest.Connect(b, ns), queue.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ex, srv := serveExecutor(b, qc, Config{})
	ec, err := execution.NewClient(execution.ClientConfig{URL: srv.URL, RetryMax: 1})
	if err != nil {
		b.Fatal(err)
	}
	return &benchFixture{q: qc, ex: ex, srv: srv, ec: ec}
}

// BenchmarkSubmit is a client's submit per task (POST /api/v1/activities
// over HTTP, 8 goroutines) against an executor on an in-process NATS
// server, with a new Idempotency-Key per submit (as the Go client and the
// CLI send) and without one; cpu-ns/op is the process's CPU per submit:
// the HTTP client, the executor and NATS (the record's create and the activity's
// publish, and with a key the key's own create before them).
func BenchmarkSubmit(b *testing.B) {
	for _, withKey := range []bool{true, false} {
		name := "no-key"
		if withKey {
			name = "idempotency-key"
		}
		b.Run(name, func(b *testing.B) {
			f := newBenchFixture(b)
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			defer hc.CloseIdleConnections()
			body := []byte(`{"queue":"q","command":["x"]}`)
			var next atomic.Int64
			inParallel(b, func() {
				for next.Add(1) <= int64(b.N) {
					req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, f.srv.URL+"/api/v1/activities", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					req.Header.Set("Content-Type", "application/json")
					if withKey {
						req.Header.Set("Idempotency-Key", uuid.NewString())
					}
					resp, err := hc.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
						b.Errorf("submit: %s", resp.Status)
						return
					}
				}
			})
		})
	}
}

// BenchmarkDeferralRoundTrip is the executor's part of a deferral, one
// task at a time, against an executor on an in-process NATS server: a
// running try's …/state deferred, its trigger pulled (as a triggerer
// pulls it), the trigger's event published, the resumed activity pulled
// (as a worker pulls it) and its …/run answered. ns/op is that round
// trip without a triggerer's claim, a worker or a process; the task's
// submit and first …/run before it are not timed.
func BenchmarkDeferralRoundTrip(b *testing.B) {
	f := newBenchFixture(b)
	trigCons, err := f.q.TriggerConsumer(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	actCons, err := f.q.ActivityConsumer(b.Context(), "q")
	if err != nil {
		b.Fatal(err)
	}
	// pull has a pull request waiting on c, as a triggerer's or a
	// worker's is, and returns where its message will come.
	pull := func(c queue.Consumer) <-chan queue.Delivery {
		ch := make(chan queue.Delivery, 1)
		go func() {
			m, err := queuetest.Next(c, 10*time.Second)
			if err != nil {
				b.Error(err)
			}
			ch <- m
		}()
		return ch
	}
	take := func(ch <-chan queue.Delivery) *activity.ExecuteTask {
		m := <-ch
		a, err := activity.Decode(m.Data())
		if err != nil {
			b.Fatal(err)
		}
		_ = m.Ack()
		return a.ExecuteTask
	}
	// Where the round trip goes, step by step (mean ms per op).
	steps := []string{"state-ms", "trigger-ms", "event-ms", "activity-ms", "run-ms"}
	spent := make([]time.Duration, len(steps))
	var at time.Time
	step := func(i int) {
		now := time.Now()
		spent[i] += now.Sub(at)
		at = now
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		first := pull(actCons)
		ti, err := f.ex.Submit(b.Context(), activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
		if err != nil {
			b.Fatal(err)
		}
		act := take(first)
		req := runReq
		req.ActivityID = act.ID
		rr, err := f.ec.Run(b.Context(), act.Token, ti.ID, req)
		if err != nil {
			b.Fatal(err)
		}
		trig := pull(trigCons)
		resumed := pull(actCons)
		b.StartTimer()
		at = time.Now()

		err = f.ec.Task(ti.ID, rr.Token).State(b.Context(), execution.StateRequest{State: activity.StateDeferred,
			Trigger: &activity.Trigger{Classpath: "event", Kwargs: map[string]any{"name": "x"}}, NextMethod: "resume"})
		if err != nil {
			b.Fatal(err)
		}
		step(0)
		m := <-trig
		var t activity.Trigger
		if err := json.Unmarshal(m.Data(), &t); err != nil {
			b.Fatal(err)
		}
		_ = m.Ack()
		step(1)
		ev, _ := json.Marshal(activity.TriggerEvent{TriggerID: t.ID, TIID: t.TIID, Try: t.Try, Payload: "x"})
		if err := queuetest.Publish(b.Context(), f.q.Conn(), queue.EventSubject(t.TIID), ev, t.ID); err != nil {
			b.Fatal(err)
		}
		step(2)
		act = take(resumed)
		step(3)
		req.ActivityID = act.ID
		if _, err := f.ec.Run(b.Context(), act.Token, ti.ID, req); err != nil {
			b.Fatal(err)
		}
		step(4)
	}
	for i, name := range steps {
		b.ReportMetric(float64(spent[i].Microseconds())/1000/float64(b.N), name)
	}
}
