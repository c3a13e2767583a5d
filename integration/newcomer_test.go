package integration

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
)

// TestSubmitWaitNamesUnservedQueue: submit --wait to a queue no live
// worker serves says so once on stderr after a few seconds and keeps
// waiting; a worker for the queue then runs the task and the wait ends.
func TestSubmitWaitNamesUnservedQueue(t *testing.T) {
	parallel(t, shared)
	// No zombie is wanted here: a loaded machine's late heartbeat must not
	// fail the served queue's 4 s task.
	c := newCluster(t, clusterOpts{plain: true, zombieThreshold: "10s"})
	c.startWorker(workerOpts{queues: "default"})
	const want = `no live worker serves queue "nobody" (executor queues)`
	sub := testbin.Start(t, "submit", c.bins.executor, nil,
		"submit", "--wait", "--queue", "nobody", "--api-url", c.apiURL, "--", "sh", "-c", "echo ran")
	testbin.Eventually(t, 30*time.Second, "the unserved-queue warning", func() bool {
		return strings.Contains(sub.Output(), want)
	})
	// It keeps waiting, and says it once: the next looks find the same.
	testbin.Eventually(t, 30*time.Second, "another look at the queues", func() bool {
		qi := c.queueInfo("nobody")
		return qi.Pending == 1 && qi.Workers == 0
	})
	select {
	case <-sub.Done():
		t.Fatalf("submit --wait ended with its task queued: %v\n%s", sub.Err(), sub.Output())
	case <-time.After(4 * time.Second):
	}
	if n := strings.Count(sub.Output(), want); n != 1 {
		t.Errorf("warning printed %d times, want once:\n%s", n, sub.Output())
	}
	c.startWorker(workerOpts{name: "worker-nobody", queues: "nobody"})
	select {
	case <-sub.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("submit --wait did not end once a worker served the queue:\n%s", sub.Output())
	}
	if sub.Err() != nil || !strings.Contains(sub.Output(), "success (try 1)") {
		t.Errorf("submit --wait: %v\n%s", sub.Err(), sub.Output())
	}

	// A served queue gets no warning.
	out, errOut, code := c.cli("submit", "--wait", "--", "sh", "-c", "sleep 4")
	if code != 0 || strings.Contains(errOut, "no live worker") {
		t.Errorf("submit --wait to a served queue: exit %d\n%s%s", code, out, errOut)
	}
}

// TestServicesWaitForNATS: a worker and a triggerer started while NATS is
// unreachable retry (logging each failure) instead of exiting, and once a
// server comes up on that port they connect, register and run work. With
// --connect-timeout a worker gives up and exits non-zero.
func TestServicesWaitForNATS(t *testing.T) {
	parallel(t, shared)
	natsAddr, apiAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	c := &cluster{t: t, bins: buildBins(t, testbin.NoRace), dir: t.TempDir(), natsURL: "nats://" + natsAddr, apiURL: "http://" + apiAddr}

	gaveUp := testbin.Start(t, "worker-gives-up", c.bins.worker, nil, "--nats-url", c.natsURL,
		"--api-url", c.apiURL, "--queues", "default", "--connect-timeout", "1500ms")
	w := c.startWorker(workerOpts{queues: "default"})
	trAddr := testbin.FreeAddr(t)
	trp := testbin.Start(t, "triggerer", c.bins.triggerer, nil, "--nats-url", c.natsURL, "--id", "waiting-triggerer",
		"--heartbeat-interval", "300ms", "--listen", trAddr, "--log-level", "debug")
	tr := &triggerer{Proc: trp, addr: trAddr}

	select {
	case <-gaveUp.Done():
		if gaveUp.Err() == nil || !strings.Contains(gaveUp.Output(), "--connect-timeout") {
			t.Errorf("worker with --connect-timeout: exit %v\n%s", gaveUp.Err(), gaveUp.Output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker with --connect-timeout 1500ms still running:\n%s", gaveUp.Output())
	}
	for _, p := range []*testbin.Proc{w, trp} {
		testbin.Eventually(t, 30*time.Second, "two logged retries", func() bool {
			select {
			case <-p.Done():
				t.Fatalf("exited while NATS was unreachable: %v\n%s", p.Err(), p.Output())
			default:
			}
			return strings.Count(p.Output(), "nats unreachable; retrying") >= 2
		})
	}

	_, portS, _ := net.SplitHostPort(natsAddr)
	port, _ := strconv.Atoi(portS)
	opts := natstest.Options(t)
	opts.Port = port
	c.nats = natstest.Exec(t, opts)
	c.exec, c.apiURL, c.api = c.runExecutor("executor", apiAddr, clusterOpts{})

	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("echo late")})
	if got := c.wait(ti.ID, 60*time.Second); got.State != activity.StateSuccess {
		t.Fatalf("task %s, want success\nworker:\n%s", got.State, w.Output())
	}
	testbin.Eventually(t, 30*time.Second, "the triggerer's /healthz", func() bool {
		_, err := tr.held()
		return err == nil
	})
	if !strings.Contains(w.Output(), "nats connected") {
		t.Errorf("worker output has no connect:\n%s", w.Output())
	}
}
