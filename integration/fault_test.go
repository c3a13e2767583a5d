package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/testbin"
)

// A worker SIGKILLed mid-task: the executor notices the lost heartbeat, the
// task runs again as a new try on another worker and succeeds exactly once,
// and the orphaned child process does not live on.
func TestWorkerKilledMidTask(t *testing.T) {
	parallel(t, shared)
	// A frozen worker's open pull requests still take activities (try 2's
	// may go there) which JetStream hands out again after the ack wait.
	c := newCluster(t, clusterOpts{zombieThreshold: "2s", ackWait: "3s"})
	w1 := c.startWorker(workerOpts{name: "worker1"})
	pidFile, out := c.path("pid"), c.path("out")
	script := `if [ "$TASKWIRE_TRY_NUMBER" = 1 ]; then echo $$ > ` + pidFile + `; exec sleep 300; fi; echo "done $TASKWIRE_TRY_NUMBER" >> ` + out
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(script),
		RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: activity.Duration(50 * time.Millisecond)}})
	pid := pidOf(t, pidFile)
	c.waitState(ti.ID, activity.StateRunning, 10*time.Second)
	w1.Kill()
	testbin.Eventually(t, 10*time.Second, "orphaned task process to die", func() bool { return !testbin.Alive(pid) })

	c.startWorker(workerOpts{name: "worker2"})
	got := c.wait(ti.ID, 60*time.Second)
	if got.State != activity.StateSuccess || got.TryNumber != 2 {
		t.Fatalf("state %s try %d (%s), want success on try 2", got.State, got.TryNumber, got.Reason)
	}
	if !strings.Contains(got.Tries[0].Reason, "zombie") {
		t.Errorf("try 1 reason %q, want a zombie", got.Tries[0].Reason)
	}
	if _, m := httpGet(t, c.apiURL+"/metrics"); metric(m, "taskwire_executor_zombies_total") != "1" {
		t.Errorf("executor zombies_total %q, want 1", metric(m, "taskwire_executor_zombies_total"))
	}
	b, _ := os.ReadFile(out)
	if string(b) != "done 2\n" {
		t.Fatalf("side effects %q, want exactly one run of try 2", b)
	}
}

func TestQueuesAreSeparate(t *testing.T) {
	parallel(t, shared)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{name: "wa", queues: "qa", extra: []string{"--worker-id", "worker-a"}})
	c.startWorker(workerOpts{name: "wb", queues: "qb", extra: []string{"--worker-id", "worker-b"}})
	var ids []string
	for i := 0; i < 6; i++ {
		q := "qa"
		if i%2 == 1 {
			q = "qb"
		}
		ids = append(ids, c.submit(activity.TaskSpec{Queue: q, Entrypoint: sh("true")}).ID)
	}
	for _, id := range ids {
		ti := c.wait(id, 30*time.Second)
		want := "worker-a"
		if ti.Queue == "qb" {
			want = "worker-b"
		}
		if ti.State != activity.StateSuccess || ti.WorkerID != want {
			t.Errorf("task on %s: state %s worker %q, want success on %s", ti.Queue, ti.State, ti.WorkerID, want)
		}
	}
}

// Worker storm: 1,000 short tasks across three workers while a random
// worker is SIGKILLed and restarted every 200–400ms. Every task succeeds
// exactly once, by the executor's records and by the tasks' own side
// effects.
func TestWorkerStorm(t *testing.T) {
	parallel(t, storm)
	const n, workers = 1000, 3
	c := newCluster(t, clusterOpts{zombieThreshold: "1500ms", ackWait: "2s", logLevel: "info", load: true})
	start := func(i int) *testbin.Proc {
		return c.startWorker(workerOpts{name: fmt.Sprintf("worker%d", i), concurrency: 8, extra: []string{"--log-level", "info"}})
	}
	ws := make([]*testbin.Proc, workers)
	for i := range ws {
		ws[i] = start(i)
	}
	out := c.path("runs")
	began := time.Now()
	stop := make(chan struct{})
	killed := make(chan int)
	go func() {
		kills := 0
		defer func() { killed <- kills }()
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(200+rng.IntN(200)) * time.Millisecond):
			}
			i := rng.IntN(workers)
			ws[i].Kill()
			kills++
			ws[i] = start(i)
		}
	}()
	ids := c.submitMany(n, func(i int) activity.TaskSpec {
		return activity.TaskSpec{Queue: "default", TaskID: fmt.Sprintf("storm-%d", i), Entrypoint: sh("sleep 0.05; " + sideEffect(out)),
			RetryPolicy: activity.RetryPolicy{Retries: 30, Delay: activity.Duration(20 * time.Millisecond)}}
	})
	c.waitFinished(n, 50*time.Second)
	close(stop)
	kills := <-killed
	rep := checkSucceededOnce(t, c, ids, out)
	t.Logf("%d tasks, %d workers SIGKILLed, %s: %d succeeded once, %d tries, %d reruns of a try whose worker died, 0 lost",
		n, kills, time.Since(began).Round(time.Millisecond), rep.succeeded, rep.tries, rep.reruns)
	if kills < 5 {
		t.Errorf("only %d kills: the storm was too short to test anything", kills)
	}
}

// Triggerer loss: 2,000 deferred tasks held by two triggerers; one is
// SIGKILLed and the event they wait for is sent at once. The survivor takes
// the dead one's triggers over and every task resumes exactly once, all
// within 60s of the kill.
func TestTriggererLoss(t *testing.T) {
	parallel(t, storm)
	const n = 2000
	// An ack wait longer than the backlog's waits (2,000 tasks on 32
	// slots), so that a resume that waited it out shows.
	const ackWait = 30 * time.Second
	c := newCluster(t, clusterOpts{logLevel: "info", ackWait: ackWait.String(), load: true})
	for i := range 2 {
		c.startWorker(workerOpts{name: fmt.Sprintf("worker%d", i), concurrency: 16, extra: []string{"--log-level", "info"}})
	}
	trigs := []*triggerer{
		c.startTriggerer(triggererOpts{name: "trig-a", capacity: n, extra: []string{"--log-level", "info"}}),
		c.startTriggerer(triggererOpts{name: "trig-b", capacity: n, extra: []string{"--log-level", "info"}}),
	}
	out := c.path("runs")
	script := `if [ -z "$TASKWIRE_NEXT_METHOD" ]; then
  printf '{"trigger":"event","kwargs":{"name":"release"},"next_method":"after"}' > "$TASKWIRE_DEFER_FILE"
  exit 0
fi
` + sideEffect(out)
	began := time.Now()
	ids := c.submitMany(n, func(i int) activity.TaskSpec {
		return activity.TaskSpec{Queue: "default", TaskID: fmt.Sprintf("deferred-%d", i), Entrypoint: sh(script)}
	})
	var held [2]int
	testbin.Eventually(t, 60*time.Second, fmt.Sprintf("the two triggerers to hold %d triggers", n), func() bool {
		for i, tr := range trigs {
			h, err := tr.held()
			if err != nil {
				return false
			}
			held[i] = h
		}
		return held[0]+held[1] == n
	})
	t.Logf("%d tasks deferred in %s; trig-a holds %d, trig-b %d", n, time.Since(began).Round(time.Millisecond), held[0], held[1])
	if held[0] == 0 || held[1] == 0 {
		t.Fatalf("one triggerer holds all %d triggers; the test needs both to hold some", n)
	}

	trigs[0].Kill()
	killed := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.api.SendEvent(ctx, "release", map[string]any{"go": true}); err != nil {
		t.Fatal(err)
	}
	// 2,000 Go SDK task processes resumed: 40–48 s with the machine to
	// itself (2 cores, -race); CI's go suite runs other packages beside it
	// (one run took 62 s), so the bound is twice that.
	c.waitFinished(n, 120*time.Second)
	t.Logf("all %d resumed and finished %s after trig-a (holding %d) was SIGKILLed", n, time.Since(killed).Round(time.Millisecond), held[0])
	if d := time.Since(killed); d > 120*time.Second {
		t.Errorf("resuming took %s, want within 120s", d)
	}
	rep := checkSucceededOnce(t, c, ids, out)
	for _, ti := range c.records(ids) {
		if ti.TryNumber != 1 || len(ti.Tries) != 1 || ti.NextMethod != "after" {
			t.Fatalf("%s: try %d, %d tries, next_method %q: want one try resumed into after", ti.TaskID, ti.TryNumber, len(ti.Tries), ti.NextMethod)
		}
		// A resume activity that reached a worker no longer listening (a
		// pull the client gave up on) waited exactly the ack wait before
		// it ran.
		if ti.QueuedAt != nil && ti.EndDate != nil && ti.EndDate.Sub(*ti.QueuedAt) >= ackWait {
			t.Errorf("%s: resumed %s after it was queued again: it waited out the ack wait", ti.TaskID, ti.EndDate.Sub(*ti.QueuedAt).Round(time.Millisecond))
		}
	}
	if rep.reruns != 0 {
		t.Errorf("%d resumed runs beyond one per task", rep.reruns)
	}
	c.waitHeld(trigs[1], 0, 10*time.Second)
}

// Two executor replicas on one NATS serve at once, each called by its own
// worker and given half the tasks; one is SIGKILLed mid-run and restarted
// on its address. Every task succeeds exactly once, and every revision of
// every record kept in the bucket decodes and follows the state graph.
// A tenth of the tasks defer once on a timer already due: its event may
// reach the replica that did not write the deferral before that replica
// sees it, and the resumed activity's …/run may reach a replica before
// the resume's write does (both sent beside their writes).
func TestExecutorReplicasAndRestart(t *testing.T) {
	parallel(t, shared)
	const n = 400
	o := clusterOpts{zombieThreshold: "3s", ackWait: "3s", logLevel: "info"}
	c := newCluster(t, o)
	addrA := strings.TrimPrefix(c.apiURL, "http://")
	_, urlB, apiB := c.runExecutor("executor-b", testbin.FreeAddr(t), o)
	info := []string{"--log-level", "info"}
	c.startWorker(workerOpts{name: "worker-a", concurrency: 8, extra: info})
	c.startWorker(workerOpts{name: "worker-b", concurrency: 8, apiURL: urlB, extra: info})
	c.startTriggerer(triggererOpts{})
	c.submitAPIs = []*client.Client{c.api, apiB}

	out := c.path("runs")
	ids := c.submitMany(n, func(i int) activity.TaskSpec {
		script := "sleep 0.05; " + sideEffect(out)
		if i%10 == 0 {
			// Fails its first try: retries cross the executors too.
			script = `[ "$TASKWIRE_TRY_NUMBER" -gt 1 ] || exit 3; ` + script
		}
		if i%10 == 5 {
			// Defers first, on a timer already due.
			script = `[ -n "$TASKWIRE_NEXT_METHOD" ] || { printf '%s' '{"trigger":"timedelta","kwargs":{"delta":0},"next_method":"resume"}' > "$TASKWIRE_DEFER_FILE"; exit 0; }; ` + script
		}
		return activity.TaskSpec{Queue: "default", TaskID: fmt.Sprintf("task-%d", i), Entrypoint: sh(script),
			RetryPolicy: activity.RetryPolicy{Retries: 5, Delay: activity.Duration(100 * time.Millisecond)}}
	})
	c.api = apiB
	testbin.EventuallyEvery(t, 30*time.Second, countPoll, "a quarter of the tasks to succeed", func() bool {
		got, err := c.count(activity.StateSuccess)
		return err == nil && got >= n/4
	})
	done, _ := c.count(activity.StateSuccess)
	c.exec.Kill()
	t.Logf("executor-a SIGKILLed with %d/%d tasks done", done, n)
	c.exec, _, _ = c.runExecutor("executor-a2", addrA, o)

	c.waitFinished(n, 50*time.Second)
	rep := checkSucceededOnce(t, c, ids, out)
	revs := checkHistories(t, c, ids)
	tis := c.records(ids)
	for i, id := range ids {
		if ti := tis[id]; i%10 == 5 && (ti == nil || ti.NextMethod != "resume" || ti.NextKwargs["event"] == nil) {
			t.Errorf("%s: succeeded without its resume: %+v", id, ti)
		}
	}
	t.Logf("%d tasks on two executors, one restarted: %d succeeded once, %d tries, %d reruns, %d record revisions all legal, 0 lost",
		n, rep.succeeded, rep.tries, rep.reruns, revs)
}

// A task that ignores SIGTERM is SIGKILLed once the kill grace (2s here)
// has passed after it was told to stop, and not before.
func TestTaskIgnoringSIGTERMIsKilledAfterGrace(t *testing.T) {
	parallel(t, timed)
	c := newCluster(t, clusterOpts{})
	c.startWorker(workerOpts{extra: []string{"--kill-grace", "2s"}})
	pidFile, terms := c.path("pid"), c.path("terms")
	ti := c.submit(activity.TaskSpec{Queue: "default",
		Entrypoint: sh(`trap 'echo TERM >> ` + terms + `' TERM; echo $$ > ` + pidFile + `; while :; do sleep 0.1; done`)})
	pid := pidOf(t, pidFile)
	c.waitState(ti.ID, activity.StateRunning, 10*time.Second)
	if _, err := c.api.Cancel(t.Context(), ti.ID); err != nil {
		t.Fatal(err)
	}
	cancelled := time.Now()
	testbin.Eventually(t, 10*time.Second, "the task to get SIGTERM", func() bool {
		b, _ := os.ReadFile(terms)
		return len(b) > 0
	})
	if !testbin.Alive(pid) {
		t.Fatal("the task died of the SIGTERM it ignores")
	}
	testbin.Eventually(t, 15*time.Second, "the task to be SIGKILLed", func() bool { return !testbin.Alive(pid) })
	d := time.Since(cancelled)
	t.Logf("SIGKILLed %s after the cancel (kill grace 2s)", d.Round(time.Millisecond))
	if d < 1500*time.Millisecond {
		t.Errorf("killed %s after the cancel, before the 2s grace", d)
	}
	if got := c.wait(ti.ID, 10*time.Second); got.State != activity.StateCancelled {
		t.Fatalf("state %s (%s), want cancelled", got.State, got.Reason)
	}
}

// A worker that stops heartbeating (SIGSTOPped, its task still running) is
// found out: the try fails as a zombie and runs again on another worker.
// When the frozen worker wakes, the executor refuses its heartbeat and it
// kills its stale copy of the task, which never records success; what it
// pulled while frozen is refused (the try runs elsewhere) and runs nowhere
// twice.
func TestStoppedHeartbeatIsZombieAndRetried(t *testing.T) {
	parallel(t, timed)
	// A frozen worker's open pull requests still take activities (try 2's
	// may go there) which JetStream hands out again after the ack wait.
	c := newCluster(t, clusterOpts{zombieThreshold: "2s", ackWait: "3s"})
	w1 := c.startWorker(workerOpts{name: "worker1"})
	pidFile, out := c.path("pid"), c.path("runs")
	script := `if [ "$TASKWIRE_TRY_NUMBER" = 1 ]; then echo $$ > ` + pidFile + `; sleep 300; fi; ` + sideEffect(out)
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(script),
		RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: activity.Duration(50 * time.Millisecond)}})
	pid := pidOf(t, pidFile)
	c.waitState(ti.ID, activity.StateRunning, 10*time.Second)
	w1.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	c.startWorker(workerOpts{name: "worker2"})
	got := c.wait(ti.ID, 30*time.Second)
	t.Logf("retried and done %s after the worker stopped heartbeating (zombie threshold 2s)", time.Since(stopped).Round(time.Millisecond))
	if got.State != activity.StateSuccess || got.TryNumber != 2 || !strings.Contains(got.Tries[0].Reason, "zombie") {
		t.Fatalf("%s on try %d, tries %+v: want success on try 2 after a zombie try 1", got.State, got.TryNumber, got.Tries)
	}
	if !testbin.Alive(pid) {
		t.Fatal("try 1's process died while its worker was frozen; the test needs it alive")
	}
	w1.Signal(syscall.SIGCONT)
	testbin.Eventually(t, 15*time.Second, "the woken worker to kill its stale try", func() bool { return !testbin.Alive(pid) })
	if got := c.wait(ti.ID, 5*time.Second); got.State != activity.StateSuccess || got.TryNumber != 2 {
		t.Fatalf("after the stale worker woke: %s on try %d", got.State, got.TryNumber)
	}
	checkSucceededOnce(t, c, []string{ti.ID}, out)
}
