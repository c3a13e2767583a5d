package integration

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

func TestCommandTaskSuccessAndFailure(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})

	ok := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(`echo "hello from $TASKWIRE_TASK_ID try $TASKWIRE_TRY_NUMBER"`), TaskID: "greet"})
	bad := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(`echo oops >&2; exit 3`)})

	if ti := c.wait(ok.ID, 30*time.Second); ti.State != activity.StateSuccess {
		t.Fatalf("ok task: state %s (%s)", ti.State, ti.Reason)
	}
	if l := c.logs(ok.ID); !strings.Contains(l, "hello from greet try 1") {
		t.Errorf("ok task logs lack its stdout:\n%s", l)
	}
	ti := c.wait(bad.ID, 30*time.Second)
	if ti.State != activity.StateFailed || !strings.Contains(ti.Reason, "exit code 3") {
		t.Fatalf("bad task: state %s reason %q, want failed with exit code 3", ti.State, ti.Reason)
	}
	if l := c.logs(bad.ID); !strings.Contains(l, "oops") {
		t.Errorf("bad task logs lack its stderr:\n%s", l)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	spec := activity.TaskSpec{Queue: "default", Entrypoint: sh(`test "$TASKWIRE_TRY_NUMBER" -ge 3`),
		RetryPolicy: activity.RetryPolicy{Retries: 3, Delay: activity.Duration(100 * time.Millisecond), Exponential: true}}
	ti := c.wait(c.submit(spec).ID, 30*time.Second)
	if ti.State != activity.StateSuccess || ti.TryNumber != 3 || len(ti.Tries) != 3 {
		t.Fatalf("state %s try %d tries %+v, want success on try 3", ti.State, ti.TryNumber, ti.Tries)
	}
	for i, tr := range ti.Tries[:2] {
		if tr.State != activity.StateUpForRetry {
			t.Errorf("try %d state %s, want up_for_retry", i+1, tr.State)
		}
	}
	// Retries exhausted: failed after max tries.
	spec.Entrypoint, spec.Retries = sh("exit 1"), 1
	ti = c.wait(c.submit(spec).ID, 30*time.Second)
	if ti.State != activity.StateFailed || ti.TryNumber != 2 {
		t.Fatalf("exhausted: state %s try %d, want failed at try 2", ti.State, ti.TryNumber)
	}
}

// pidOf waits for a task to write its pid to file.
func pidOf(t *testing.T, file string) int {
	t.Helper()
	var pid int
	testbin.Eventually(t, 20*time.Second, "pid file "+file, func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	})
	return pid
}

func TestExecutionTimeoutKillsProcess(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	pidFile := c.path("pid")
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(`echo $$ > ` + pidFile + `; exec sleep 300`),
		ExecutionTimeout: activity.Duration(time.Second)})
	pid := pidOf(t, pidFile)
	ti = c.wait(ti.ID, 30*time.Second)
	if ti.State != activity.StateFailed || !strings.Contains(ti.Reason, "timeout") {
		t.Fatalf("state %s reason %q, want failed by timeout", ti.State, ti.Reason)
	}
	testbin.Eventually(t, 10*time.Second, "timed-out process to die", func() bool { return !testbin.Alive(pid) })
}

func TestCancelRunningTask(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	pidFile := c.path("pid")
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(`echo $$ > ` + pidFile + `; exec sleep 300`)})
	pid := pidOf(t, pidFile)
	c.waitState(ti.ID, activity.StateRunning, 10*time.Second)
	if _, err := c.api.Cancel(t.Context(), ti.ID); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, 10*time.Second, "cancelled process to die", func() bool { return !testbin.Alive(pid) })
	if got := c.wait(ti.ID, 5*time.Second); got.State != activity.StateCancelled {
		t.Fatalf("state %s, want cancelled", got.State)
	}
	// Cancelling a finished task is refused.
	if _, err := c.api.Cancel(t.Context(), ti.ID); err == nil {
		t.Fatal("second cancel: no error")
	}
}

func TestCallbacks(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{})
	out := c.path("callbacks")
	cb := func(on string) *activity.Callback {
		return &activity.Callback{Entrypoint: sh(`echo "` + on + ` $TASKWIRE_TASK_ID $TASKWIRE_STATE" >> ` + out)}
	}
	spec := activity.TaskSpec{Queue: "default", TaskID: "flaky", Entrypoint: sh(`test "$TASKWIRE_TRY_NUMBER" -ge 2`),
		RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: activity.Duration(50 * time.Millisecond)},
		Callbacks:   activity.Callbacks{OnSuccess: cb("on_success"), OnRetry: cb("on_retry"), OnFailure: cb("on_failure")}}
	c.wait(c.submit(spec).ID, 30*time.Second)
	spec.TaskID, spec.Entrypoint, spec.Retries = "doomed", sh("exit 1"), 0
	c.wait(c.submit(spec).ID, 30*time.Second)
	want := []string{"on_retry flaky up_for_retry", "on_success flaky success", "on_failure doomed failed"}
	testbin.Eventually(t, 20*time.Second, "three callbacks", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "\n") >= 3
	})
	b, _ := os.ReadFile(out)
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("callbacks file lacks %q:\n%s", w, b)
		}
	}
}
