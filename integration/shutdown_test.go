package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// SIGTERM to a worker: it stops pulling, lets a task that ends within the
// grace period finish, kills the one that does not (its whole process
// group) and reports it for retry; another worker then runs that retry.
// Nothing is lost and nothing runs twice.
func TestWorkerSIGTERMDrainsThenHandsBack(t *testing.T) {
	parallel(t, timed)
	c := newCluster(t, clusterOpts{})
	w1 := c.startWorker(workerOpts{name: "worker1", extra: []string{"--grace-period", "2s"}})

	quickOut, slowOut, slowPid := c.path("quick"), c.path("slow"), c.path("slow.pid")
	quick := c.submit(activity.TaskSpec{Queue: "default", TaskID: "quick",
		Entrypoint: sh(`sleep 0.5; echo "quick $TASKWIRE_TRY_NUMBER" >> ` + quickOut)})
	slow := c.submit(activity.TaskSpec{Queue: "default", TaskID: "slow",
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(50 * time.Millisecond)},
		Entrypoint:  sh(`if [ "$TASKWIRE_TRY_NUMBER" = 1 ]; then echo $$ > ` + slowPid + `; sleep 300 & wait; fi; echo "slow $TASKWIRE_TRY_NUMBER" >> ` + slowOut)})
	c.waitState(quick.ID, activity.StateRunning, 10*time.Second)
	c.waitState(slow.ID, activity.StateRunning, 10*time.Second)
	pid := pidOf(t, slowPid)

	w1.Signal(15) // SIGTERM
	// While draining, the worker takes no new work.
	late := c.submit(activity.TaskSpec{Queue: "default", TaskID: "late", Entrypoint: sh("true")})
	select {
	case <-w1.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not exit within 20s of SIGTERM")
	}
	if err := w1.Err(); err != nil {
		t.Errorf("worker exit after SIGTERM: %v, want a clean exit", err)
	}
	if !strings.Contains(w1.Output(), "shutting down") {
		t.Errorf("worker did not log its shutdown:\n%s", w1.Output())
	}
	testbin.Eventually(t, 5*time.Second, "the killed task's process to be gone", func() bool { return !testbin.Alive(pid) })

	if got := c.wait(quick.ID, 10*time.Second); got.State != activity.StateSuccess || got.TryNumber != 1 {
		t.Fatalf("quick task: %s try %d (%s), want success on try 1 within the grace period", got.State, got.TryNumber, got.Reason)
	}
	ti, err := c.api.Get(t.Context(), slow.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ti.State != activity.StateUpForRetry && ti.State != activity.StateQueued {
		t.Fatalf("slow task after the worker stopped: %s (%s), want up_for_retry or queued", ti.State, ti.Reason)
	}
	if ti, _ := c.api.Get(t.Context(), late.ID); ti.State != activity.StateQueued {
		t.Fatalf("task submitted during the drain: %s, want still queued", ti.State)
	}

	c.startWorker(workerOpts{name: "worker2"})
	got := c.wait(slow.ID, 30*time.Second)
	if got.State != activity.StateSuccess || got.TryNumber != 2 {
		t.Fatalf("slow task: %s try %d (%s), want success on try 2", got.State, got.TryNumber, got.Reason)
	}
	if r := got.Tries[0].Reason; !strings.Contains(r, "shut") && !strings.Contains(r, "stop") {
		t.Errorf("try 1 reason %q, want it to name the worker's shutdown", r)
	}
	if got := c.wait(late.ID, 30*time.Second); got.State != activity.StateSuccess {
		t.Fatalf("late task: %s, want success on the second worker", got.State)
	}
	for file, want := range map[string]string{quickOut: "quick 1\n", slowOut: "slow 2\n"} {
		if b, _ := os.ReadFile(file); string(b) != want {
			t.Errorf("%s: %q, want %q (each task ran exactly once to completion)", file, b, want)
		}
	}
}

// One slot, four queues: an idle queue's pull does not keep the others
// waiting for long.
func TestOneSlotManyQueues(t *testing.T) {
	parallel(t, timed)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{queues: "qa,qb,qc,qd", concurrency: 1})
	// Untimed: the first task waits for the worker process to start and
	// subscribe (startWorker does not wait), which is not what is measured
	// (a loaded CI box once took 2.4s for it).
	if got := c.wait(c.submit(activity.TaskSpec{Queue: "qa", Entrypoint: sh("true")}).ID, 30*time.Second); got.State != activity.StateSuccess {
		t.Fatalf("first task: %s (%s)", got.State, got.Reason)
	}
	for _, q := range []string{"qd", "qc", "qb", "qa", "qd"} {
		start := time.Now()
		got := c.wait(c.submit(activity.TaskSpec{Queue: q, Entrypoint: sh("true")}).ID, 30*time.Second)
		if got.State != activity.StateSuccess {
			t.Fatalf("%s: %s (%s)", q, got.State, got.Reason)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a task on %s took %s with the other queues idle; want well under a fetch wait", q, d.Round(time.Millisecond))
		}
	}
}
