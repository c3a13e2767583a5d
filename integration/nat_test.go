package integration

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/netns"
	"github.com/taskwire/taskwire/internal/testbin"
)

// A worker behind NAT: in a network namespace behind a router namespace
// that masquerades its traffic and drops every connection from outside,
// it only dials out (NATS and the Execution API), and that is enough: it
// runs tasks, streams their logs to `executor logs --follow`, defers and
// resumes a task, has a task cancelled, and is drained.
func TestWorkerBehindNAT(t *testing.T) {
	parallel(t, shared)
	inner, router := netns.NewBehindNAT(t)
	// In process, not natstest.RunProcessWith: Connz below.
	srv := natstest.RunServerWith(t, func(so *server.Options) { so.Host = router.HostAddr })
	const token = "nat-test" // off loopback: secure by default
	c := newCluster(t, clusterOpts{plain: true, nats: srv, listen: freeAddrOn(t, router.HostAddr), operatorToken: token})
	c.startTriggerer(triggererOpts{})
	metrics := net.JoinHostPort(inner.Addr, "9091")
	w := c.startWorker(workerOpts{name: "worker-nat", ns: inner, extra: []string{"--worker-id", "nat", "--listen", metrics}})
	testbin.Eventually(t, 30*time.Second, "the worker behind NAT to be live", func() bool { return workerState(c, "nat") == activity.MemberLive })

	// The NAT: the worker's connections come from the router's address,
	// and nothing outside can connect in, though its /metrics listens
	// (reachable from inside) and the root namespace routes there.
	testbin.Eventually(t, 10*time.Second, "the worker's /metrics to listen", func() bool {
		_, err := inner.Output("bash", "-c", "exec 3<>/dev/tcp/"+inner.Addr+"/9091")
		return err == nil
	})
	if err := netns.Dial(metrics); err == nil {
		t.Fatalf("connected to %s from outside the NAT", metrics)
	}
	cz, err := srv.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var fromRouter, fromInside int
	for _, ci := range cz.Conns {
		switch ci.IP {
		case router.Addr:
			fromRouter++
		case inner.Addr:
			fromInside++
		}
	}
	if fromRouter == 0 || fromInside > 0 {
		t.Errorf("NATS connections from the router %s: %d, from the worker's own %s: %d; want masqueraded ones only",
			router.Addr, fromRouter, inner.Addr, fromInside)
	}

	// A task.
	got := c.wait(c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("echo hello from behind NAT")}).ID, 30*time.Second)
	if got.State != activity.StateSuccess || got.WorkerID != "nat" || !strings.Contains(c.logs(got.ID), "hello from behind NAT") {
		t.Fatalf("task: %s on %q: %s\n%s", got.State, got.WorkerID, got.Reason, c.logs(got.ID))
	}

	// logs --follow of a running task.
	release := c.path("release")
	ti := c.submit(activity.TaskSpec{Queue: "default",
		Entrypoint: sh("echo first; while [ ! -e " + release + " ]; do sleep 0.05; done; echo second")})
	c.waitState(ti.ID, activity.StateRunning, 20*time.Second)
	follow := testbin.Start(t, "logs", c.bins.executor, nil, "logs", ti.ID, "--follow", "--api-url", c.apiURL, "--token", token)
	testbin.Eventually(t, 20*time.Second, "the first line, followed", func() bool { return strings.Contains(follow.Output(), "first") })
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-follow.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("logs --follow did not end with the task")
	}
	if follow.Err() != nil || !strings.Contains(follow.Output(), "second") {
		t.Errorf("logs --follow: %v\n%s", follow.Err(), follow.Output())
	}

	// Defer and resume (the Go SDK task waits on a timer).
	checkResumedOnce(t, c, c.wait(c.submit(goTask("wait", map[string]any{"seconds": 0.3})).ID, 60*time.Second))

	// Cancel.
	pidFile := c.path("pid")
	long := c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("echo $$ > " + pidFile + "; exec sleep 300")})
	pid := pidOf(t, pidFile)
	c.waitState(long.ID, activity.StateRunning, 20*time.Second)
	if _, err := c.api.Cancel(context.Background(), long.ID); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, 20*time.Second, "the cancelled task's process to die", func() bool { return !testbin.Alive(pid) })
	if got := c.wait(long.ID, 20*time.Second); got.State != activity.StateCancelled {
		t.Errorf("cancelled task: %s", got.State)
	}

	// Drain.
	if _, err := c.api.DrainWorker(context.Background(), "nat"); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, 20*time.Second, "the worker behind NAT to drain", func() bool {
		return strings.Contains(w.Output(), "drained") && workerState(c, "nat") == activity.MemberDraining
	})
}
