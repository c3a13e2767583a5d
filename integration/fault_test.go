package integration

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// A worker SIGKILLed mid-task: the executor notices the lost heartbeat, the
// task runs again as a new try on another worker and succeeds exactly once,
// and the orphaned child process does not live on.
func TestWorkerKilledMidTask(t *testing.T) {
	c := newCluster(t, clusterOpts{zombieThreshold: "2s"})
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
