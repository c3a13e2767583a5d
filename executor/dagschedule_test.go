package executor

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/queue"
)

// TestDagScheduleControlledClock drives a schedule with a test clock: the
// timer deliveries are made by hand (fireSchedule, what the timer
// consumer calls), twice at once as two replicas would, and a paused DAG
// creates nothing. The clock is days ahead of real time so the real
// timers this schedules stay pending during the test.
func TestDagScheduleControlledClock(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	t0 := time.Now().UTC().Add(240 * time.Hour).Truncate(time.Hour).Add(20 * time.Minute)
	clock.now = t0
	f1 := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour}, clock.use)
	f2 := startOn(t, f1.q, Config{ScanInterval: time.Hour}, clock.use)
	f1.putDag("dag_id: hourly\nschedule: '@hourly'\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	var rec dag.Record
	f1.api("GET", "/api/v1/dags/hourly", nil, &rec)
	t1 := t0.Truncate(time.Hour).Add(time.Hour)
	if rec.NextRunAt == nil || !rec.NextRunAt.Equal(t1) {
		t.Fatalf("next run %v, want %s", rec.NextRunAt, t1)
	}
	// The timer reaches both replicas at once: one run.
	var wg sync.WaitGroup
	for _, ex := range []*Executor{f1.ex, f2.ex} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ex.fireSchedule(t.Context(), "hourly", t1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	runs := func() []dag.RunView {
		var out struct {
			Runs []dag.RunView `json:"dag_runs"`
		}
		f1.api("GET", "/api/v1/dags/hourly/runs", nil, &out)
		return out.Runs
	}
	rs := runs()
	if len(rs) != 1 || rs[0].RunID != dag.RunIDScheduled(t1) || rs[0].RunType != dag.RunTypeScheduled || !rs[0].LogicalDate.Equal(t1) {
		t.Fatalf("runs %+v, want one scheduled run at %s", rs, t1)
	}
	if act := f1.tryTake("q", 2*time.Second); act == nil || act.TI.TaskID != "a" {
		t.Fatalf("first task not queued: %+v", act)
	}
	if again := f1.tryTake("q", 300*time.Millisecond); again != nil {
		t.Fatalf("queued twice: %+v", again.TI)
	}
	f1.api("GET", "/api/v1/dags/hourly", nil, &rec)
	t2 := t1.Add(time.Hour)
	if rec.NextRunAt == nil || !rec.NextRunAt.Equal(t2) || rec.LastScheduled == nil || !rec.LastScheduled.Equal(t1) {
		t.Fatalf("after the tick: next %v last %v, want %s and %s", rec.NextRunAt, rec.LastScheduled, t2, t1)
	}
	// A stale delivery of the first tick creates nothing.
	if err := f2.ex.fireSchedule(t.Context(), "hourly", t1); err != nil {
		t.Fatal(err)
	}
	// Paused: the tick creates no run.
	f1.api("POST", "/api/v1/dags/hourly/pause", nil, nil)
	if err := f1.ex.fireSchedule(t.Context(), "hourly", t2); err != nil {
		t.Fatal(err)
	}
	if n := len(runs()); n != 1 {
		t.Fatalf("%d runs, want 1 (paused DAG, stale tick)", n)
	}
	// Unpaused three hours later, without catchup: the missed ticks are
	// skipped, the next is planned from now.
	clock.advance(3 * time.Hour)
	if st := f1.api("POST", "/api/v1/dags/hourly/unpause", nil, nil); st != http.StatusOK {
		t.Fatalf("unpause: %d", st)
	}
	rec = dag.Record{}
	f1.api("GET", "/api/v1/dags/hourly", nil, &rec)
	if want := t0.Add(3 * time.Hour).Truncate(time.Hour).Add(time.Hour); rec.NextRunAt == nil || !rec.NextRunAt.Equal(want) {
		t.Fatalf("after unpause: next %v, want %s", rec.NextRunAt, want)
	}
}

// TestDagScheduleCatchup: with catchup, the ticks since start_date are
// created one after another.
func TestDagScheduleCatchup(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	t0 := time.Now().UTC().Add(240 * time.Hour).Truncate(time.Hour)
	clock.now = t0.Add(10 * time.Minute)
	f := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour}, clock.use)
	start := t0.Add(-2 * time.Hour)
	f.putDag("dag_id: cu\nschedule: '@every 1h'\ncatchup: true\nstart_date: " + start.Format(time.RFC3339) +
		"\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	for i, want := range []time.Time{start, start.Add(time.Hour), t0, t0.Add(time.Hour)} {
		var rec dag.Record
		f.api("GET", "/api/v1/dags/cu", nil, &rec)
		if rec.NextRunAt == nil || !rec.NextRunAt.Equal(want) {
			t.Fatalf("tick %d: next %v, want %s", i, rec.NextRunAt, want)
		}
		if i < 3 {
			if err := f.ex.fireSchedule(t.Context(), "cu", want); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out struct {
		Runs []dag.RunView `json:"dag_runs"`
	}
	f.api("GET", "/api/v1/dags/cu/runs", nil, &out)
	if len(out.Runs) != 3 {
		t.Fatalf("%d runs, want 3", len(out.Runs))
	}
}

// TestDagScheduleTimerFires lets the real durable timer (a JetStream
// scheduled message) create runs of an "@every 1s" schedule.
func TestDagScheduleTimerFires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour})
	f.putDag("dag_id: tick\nschedule: '@every 1s'\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out struct {
			Runs []dag.RunView `json:"dag_runs"`
		}
		f.api("GET", "/api/v1/dags/tick/runs", nil, &out)
		if len(out.Runs) >= 2 {
			if out.Runs[0].RunID == out.Runs[1].RunID || out.Runs[0].RunType != dag.RunTypeScheduled {
				t.Fatalf("runs %+v", out.Runs[:2])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scheduled runs after 20s, want 2", len(out.Runs))
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.api("POST", "/api/v1/dags/tick/pause", nil, nil)
}
