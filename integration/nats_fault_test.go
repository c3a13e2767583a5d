package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// mixedSpec is task i of a run that mixes plain tasks with tasks that defer
// on a 1s timer first; each records its (final) run in out.
func mixedSpec(out string) func(i int) activity.TaskSpec {
	deferring := `if [ -z "$TASKWIRE_NEXT_METHOD" ]; then
  printf '{"trigger":"timedelta","kwargs":{"delta":"1s"},"next_method":"after"}' > "$TASKWIRE_DEFER_FILE"
  exit 0
fi
` + sideEffect(out)
	return func(i int) activity.TaskSpec {
		script := "sleep 0.1; " + sideEffect(out)
		if i%3 == 0 {
			script = deferring
		}
		return activity.TaskSpec{Queue: "default", TaskID: fmt.Sprintf("task-%d", i), Entrypoint: sh(script),
			RetryPolicy: activity.RetryPolicy{Retries: 5, Delay: activity.Duration(100 * time.Millisecond)}}
	}
}

// procsLogged waits until every process has logged want.
func procsLogged(t *testing.T, want string, ps ...*testbin.Proc) {
	t.Helper()
	for _, p := range ps {
		testbin.Eventually(t, 30*time.Second, p.Name+" to log "+want, func() bool { return strings.Contains(p.Output(), want) })
	}
}

// NATS restart: the NATS server (file storage) stops and starts again on
// its port during a run of plain and deferring tasks. The executor, the
// workers and the triggerer reconnect by themselves and every task
// succeeds exactly once.
func TestNATSRestart(t *testing.T) {
	parallel(t, storm)
	const n, outage = 300, 8 * time.Second
	opts := natstest.Options(t)
	ns := natstest.Exec(t, opts) // sets opts.Port
	c := newCluster(t, clusterOpts{natsURL: ns.ClientURL(), zombieThreshold: "3s", ackWait: "3s", logLevel: "info"})
	procs := []*testbin.Proc{c.exec}
	for i := range 2 {
		procs = append(procs, c.startWorker(workerOpts{name: fmt.Sprintf("worker%d", i), concurrency: 8, extra: []string{"--log-level", "info"}}))
	}
	procs = append(procs, c.startTriggerer(triggererOpts{extra: []string{"--log-level", "info"}}).Proc)
	defer stopAll(procs)

	out := c.path("runs")
	spec := mixedSpec(out)
	ids := c.submitMany(n/2, spec)
	testbin.EventuallyEvery(t, 30*time.Second, countPoll, "a third of the tasks to finish", func() bool {
		got, err := c.count(activity.StateSuccess)
		return err == nil && got >= n/6
	})
	running, _ := c.count(activity.StateRunning, activity.StateQueued, activity.StateDeferred, activity.StateUpForRetry)
	ns.Stop()
	down := time.Now()
	procsLogged(t, "nats disconnected", procs...)
	// The outage itself: long enough that tasks end, heartbeat and call
	// the executor while NATS is away.
	<-time.After(outage - time.Since(down))
	natstest.Exec(t, opts) // on the same port and store
	t.Logf("NATS down for %s with %d tasks unfinished", time.Since(down).Round(time.Millisecond), running)
	procsLogged(t, "nats reconnected", procs...)

	more := c.submitMany(n/2, func(i int) activity.TaskSpec { return spec(n/2 + i) })
	ids = append(ids, more...)
	c.waitFinished(n, 50*time.Second)
	rep := checkSucceededOnce(t, c, ids, out)
	t.Logf("%d tasks across a NATS restart: %d succeeded once, %d tries, %d reruns, 0 lost", n, rep.succeeded, rep.tries, rep.reruns)
}

// stopAll stops processes (before the NATS server they use, which a test's
// cleanup would stop first).
func stopAll(ps []*testbin.Proc) {
	for _, p := range ps {
		p.Stop(10 * time.Second)
	}
}

// NATS cluster: three embedded servers, streams and buckets at 3 replicas;
// the server leading the task-instance bucket is killed during a run.
// Progress continues and every task succeeds exactly once.
func TestNATSClusterNodeLoss(t *testing.T) {
	parallel(t, storm)
	const n = 300
	nc3 := natstest.RunProcessCluster(t, 3)
	c := newCluster(t, clusterOpts{natsURL: nc3.URLs(), replicas: 3, zombieThreshold: "3s", ackWait: "3s", logLevel: "info"})
	procs := []*testbin.Proc{c.exec}
	for i := range 2 {
		procs = append(procs, c.startWorker(workerOpts{name: fmt.Sprintf("worker%d", i), concurrency: 8, extra: []string{"--log-level", "info"}}))
	}
	procs = append(procs, c.startTriggerer(triggererOpts{extra: []string{"--log-level", "info"}}).Proc)
	defer stopAll(procs)

	out := c.path("runs")
	ids := c.submitMany(n, mixedSpec(out))
	testbin.EventuallyEvery(t, 30*time.Second, countPoll, "a third of the tasks to finish", func() bool {
		got, err := c.count(activity.StateSuccess)
		return err == nil && got >= n/3
	})
	// The bucket's leader, once one leads it (a moment may have none: an
	// election under way on a busy machine).
	victim := -1
	nc := natstest.Connect(t, nc3.Procs[0])
	testbin.Eventually(t, 10*time.Second, "a server to lead the task_instances bucket", func() bool {
		s, err := queuetest.Stream(t.Context(), nc, "KV_"+queue.BucketTaskInstances)
		if err != nil || s.Cluster == nil {
			return false
		}
		for i, p := range nc3.Procs {
			if p.Opts.ServerName == s.Cluster.Leader {
				victim = i
			}
		}
		return victim >= 0
	})
	nc.Close()
	done, _ := c.count(activity.StateSuccess)
	nc3.Procs[victim].Stop()
	killed := time.Now()
	t.Logf("killed %s (leader of KV_%s) with %d/%d tasks done", nc3.Procs[victim].Opts.ServerName, queue.BucketTaskInstances, done, n)
	c.waitFinished(n, 50*time.Second)
	t.Logf("the rest finished %s after the kill", time.Since(killed).Round(time.Millisecond))
	rep := checkSucceededOnce(t, c, ids, out)
	t.Logf("%d tasks across the loss of one of 3 nodes: %d succeeded once, %d tries, %d reruns, 0 lost", n, rep.succeeded, rep.tries, rep.reruns)

	// Nothing scaled the layout down: every stream and consumer is still R3.
	var live string
	for i, p := range nc3.Procs {
		if i != victim {
			live = p.ClientURL()
		}
	}
	conn, err := queuetest.Connect(live, queuetest.ConnOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The info requests wait out a stream or consumer whose leader is
	// still being elected on the two servers left.
	for _, name := range []string{queue.StreamActivities, queue.StreamTriggers, queue.StreamEvents, "KV_" + queue.BucketTaskInstances} {
		var r int
		testbin.Eventually(t, 10*time.Second, "the info of stream "+name, func() bool {
			s, err := queuetest.Stream(ctx, conn, name)
			if err == nil {
				r = s.Config.Replicas
			}
			return err == nil
		})
		if r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
	var r int
	testbin.Eventually(t, 10*time.Second, "the info of queue default's consumer", func() bool {
		cons, err := queuetest.Consumer(ctx, conn, queue.StreamActivities, queue.ActivityConsumerName("default"))
		if err == nil {
			r = cons.Config.Replicas
		}
		return err == nil
	})
	if r != 3 && r != 0 {
		t.Errorf("consumer of queue default has %d replicas, want 3", r)
	}
}
