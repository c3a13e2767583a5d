package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/freeport"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/netns"
	"github.com/taskwire/taskwire/internal/testbin"
)

// freeAddrOn returns host:port with a port free on host.
func freeAddrOn(t testing.TB, host string) string {
	t.Helper()
	addr, err := freeport.Addr(host)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// nsCluster is a cluster whose NATS server and executor listen on the
// root end of ns's veth pair, where a worker inside ns reaches them.
func nsCluster(t *testing.T, ns *netns.NS, o clusterOpts) *cluster {
	t.Helper()
	o.nats = natstest.RunProcessWith(t, func(so *server.Options) { so.Host = ns.HostAddr })
	o.listen = freeAddrOn(t, ns.HostAddr)
	return newCluster(t, o)
}

// workerState is the worker's state in the registry ("" when not listed).
func workerState(c *cluster, id string) string {
	ws, err := c.api.Workers(context.Background())
	if err != nil {
		return ""
	}
	for _, w := range ws {
		if w.ID == id {
			return w.State
		}
	}
	return ""
}

// Split brain. A worker whose route to the Execution API is cut (iptables
// DROP in its network namespace) while NATS stays reachable must kill its
// try before the executor may call it a zombie and start the next try on
// another worker: the task's side-effect file must never have a line of
// try 1 after the first line of try 2. The cut-off worker shows as
// api-unreachable, stops pulling (the retry and new tasks start on the
// healthy worker beside it, promptly), and pulls again once the API
// answers.
func TestSplitBrainAPICutWorkerKillsItsTry(t *testing.T) {
	parallel(t, timed)
	ns := netns.New(t)
	const zombie = 8 * time.Second
	// Off loopback, so with an operator token (secure by default).
	c := nsCluster(t, ns, clusterOpts{zombieThreshold: zombie.String(), logLevel: "info", operatorToken: "partition-test"})
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(c.apiURL, "http://"))

	cut := c.startWorker(workerOpts{name: "worker-cut", queues: "default", ns: ns, extra: []string{"--worker-id", "cut"}})
	testbin.Eventually(t, 30*time.Second, "the namespaced worker to be live", func() bool { return workerState(c, "cut") == activity.MemberLive })

	// Try 1 writes a line every 100ms for five minutes; later tries for 2s.
	out := c.path("side-effects")
	script := fmt.Sprintf(`n=3000; [ "$TASKWIRE_TRY_NUMBER" -gt 1 ] && n=20
i=0; while [ $i -lt $n ]; do echo "$TASKWIRE_TRY_NUMBER $(date +%%s.%%N)" >> %s; sleep 0.1; i=$((i+1)); done`, out)
	ti := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh(script),
		RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: activity.Duration(100 * time.Millisecond)}})
	running := c.waitState(ti.ID, activity.StateRunning, 30*time.Second)
	if running.WorkerID != "cut" {
		t.Fatalf("try 1 runs on %q, want the namespaced worker", running.WorkerID)
	}
	testbin.Eventually(t, 10*time.Second, "try 1's first side effect", func() bool {
		b, _ := os.ReadFile(out)
		return len(b) > 0
	})
	ok := c.startWorker(workerOpts{name: "worker-ok", queues: "default", extra: []string{"--worker-id", "ok"}})
	testbin.Eventually(t, 30*time.Second, "the healthy worker to be live", func() bool { return workerState(c, "ok") == activity.MemberLive })

	lift := ns.DropTCPTo(apiPort)
	cutAt := time.Now()
	t.Logf("cut the namespaced worker's route to the Execution API (port %s); NATS stays reachable", apiPort)

	// The retry starts on the healthy worker, once the executor has failed
	// try 1 as a zombie (zombie threshold after its last heartbeat).
	var try2 *activity.TaskInstance
	testbin.Eventually(t, 4*time.Minute, "try 2 to run", func() bool {
		got, err := c.api.Get(context.Background(), ti.ID)
		if err != nil {
			return false
		}
		try2 = got
		return got.TryNumber >= 2 && (got.State == activity.StateRunning || got.State.Terminal())
	})
	startedIn := time.Since(cutAt)
	t.Logf("try 2 %s on %q %s after the cut (zombie threshold %s)", try2.State, try2.WorkerID, startedIn.Round(time.Millisecond), zombie)
	if try2.WorkerID != "ok" {
		t.Errorf("try 2 ran on %q, want the healthy worker", try2.WorkerID)
	}
	if startedIn > zombie+8*time.Second {
		t.Errorf("try 2 started %s after the cut: want it promptly after the zombie threshold (%s)", startedIn, zombie)
	}

	final := c.wait(ti.ID, 60*time.Second)
	if final.State != activity.StateSuccess || final.TryNumber != 2 {
		t.Fatalf("task %s on try %d (%s), want success on try 2", final.State, final.TryNumber, final.Reason)
	}
	if r := final.Tries[0].Reason; !strings.Contains(r, "zombie") && !strings.Contains(r, "Execution API") {
		t.Errorf("try 1 ended %q, want a zombie or the worker's kill", r)
	}

	// No moment with both tries running: every line of try 1 comes
	// before the first line of try 2.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	first2, overlap := -1, 0
	var last1, start2 string
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		switch {
		case f[0] == "2" && first2 < 0:
			first2, start2 = i, f[1]
		case f[0] == "1" && first2 >= 0:
			overlap++
		}
		if f[0] == "1" {
			last1 = f[1]
		}
	}
	t.Logf("side effects: %d lines; try 1's last at %s, try 2's first at %s", len(lines), last1, start2)
	if first2 < 0 {
		t.Fatal("try 2 left no side effect")
	}
	if overlap > 0 {
		t.Fatalf("split brain: %d lines of try 1 written after try 2 started", overlap)
	}
	if !strings.Contains(cut.Output(), "task killed: its heartbeats could not reach the Execution API") {
		t.Errorf("the cut worker did not say it killed its try")
	}

	testbin.Eventually(t, 10*time.Second, "the cut worker to show as api-unreachable", func() bool {
		return workerState(c, "cut") == activity.MemberAPIUnreachable
	})
	t.Logf("api-unreachable in the registry %s after the cut", time.Since(cutAt).Round(time.Millisecond))

	// New tasks go to the healthy worker only while the other cannot
	// reach the API.
	var more []string
	for range 4 {
		more = append(more, c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID)
	}
	for _, id := range more {
		got := c.wait(id, 30*time.Second)
		if got.State != activity.StateSuccess || got.WorkerID != "ok" {
			t.Errorf("task %s: %s on %q, want success on the healthy worker", id, got.State, got.WorkerID)
		}
	}

	// The route back: the worker pulls again (the healthy one is drained
	// so the next task can only go there).
	lift()
	testbin.Eventually(t, 20*time.Second, "the worker to be live again", func() bool { return workerState(c, "cut") == activity.MemberLive })

	// Idle, it finds out by itself too (a probe per heartbeat interval
	// when it called nothing), before it pulls anything.
	lift = ns.DropTCPTo(apiPort)
	testbin.Eventually(t, 20*time.Second, "the idle cut worker to show as api-unreachable", func() bool {
		return workerState(c, "cut") == activity.MemberAPIUnreachable
	})
	lift()
	testbin.Eventually(t, 20*time.Second, "the worker to be live once more", func() bool { return workerState(c, "cut") == activity.MemberLive })
	if _, err := c.api.DrainWorker(context.Background(), "ok"); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, 20*time.Second, "the healthy worker to drain", func() bool {
		return strings.Contains(ok.Output(), "draining: an operator asked")
	})
	got := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID, 30*time.Second)
	if got.State != activity.StateSuccess || got.WorkerID != "cut" {
		t.Fatalf("after the API came back: %s on %q, want success on the worker that was cut off", got.State, got.WorkerID)
	}
}
