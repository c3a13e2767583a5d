package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
)

// Issue 17, item 6 (retention): finished records past the retention are
// exported, then deleted; unfinished ones stay whatever their age.
func TestFinishedRecordsAreExportedThenDeleted(t *testing.T) {
	parallel(t, shared)
	exports := t.TempDir()
	c := newCluster(t, clusterOpts{extra: []string{"--record-retention", "3s", "--retention-interval", "300ms",
		"--record-export-dir", exports}})
	c.startWorker(workerOpts{})
	var done []string
	for range 3 {
		done = append(done, c.submit(activity.TaskSpec{Queue: "default", Entrypoint: sh("true")}).ID)
	}
	waiting := c.submit(activity.TaskSpec{Queue: "nobody-serves", Entrypoint: sh("true")})
	for _, id := range done {
		c.wait(id, time.Minute)
	}
	testbin.Eventually(t, 30*time.Second, "finished records to be deleted", func() bool {
		for _, id := range done {
			if _, err := c.api.Get(context.Background(), id); !errors.Is(err, client.ErrNotFound) {
				return false
			}
		}
		return true
	})
	if ti, err := c.api.Get(context.Background(), waiting.ID); err != nil || ti.State != activity.StateQueued {
		t.Errorf("the queued task: %v, %v; want kept, queued", ti, err)
	}
	files, _ := filepath.Glob(filepath.Join(exports, "task-instances-*.jsonl"))
	exported := map[string]activity.State{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ti, err := activity.UnmarshalRecord(sc.Bytes())
			if err != nil {
				t.Fatalf("export line: %v", err)
			}
			exported[ti.ID] = ti.State
		}
		fh.Close()
	}
	for _, id := range done {
		if exported[id] != activity.StateSuccess {
			t.Errorf("%s exported as %q, want its success record", id, exported[id])
		}
	}
	if _, ok := exported[waiting.ID]; ok {
		t.Errorf("the queued task was exported")
	}
}

// TestRecordRetentionFigure measures the executor's start (time to /readyz)
// and RSS with TASKWIRE_RECORDS_N finished records, half of them past the
// 30-day retention, before and after the retention deleted those. It is a
// figure for README, skipped unless TASKWIRE_RECORDS_N is set:
//
//	TASKWIRE_RECORDS_N=20000 go test -count=1 -run TestRecordRetentionFigure -v ./integration
func TestRecordRetentionFigure(t *testing.T) {
	parallel(t, shared)
	n, _ := strconv.Atoi(os.Getenv("TASKWIRE_RECORDS_N"))
	if n <= 0 {
		t.Skip("set TASKWIRE_RECORDS_N")
	}
	ns := natstest.RunProcess(t)
	qc, err := queue.New(t.Context(), natstest.Connect(t, ns), queue.Config{})
	if err != nil {
		t.Fatal(err)
	}
	kv := qc.Bucket(queue.BucketTaskInstances)
	now := time.Now().UTC()
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			at := now.Add(-time.Hour)
			if i%2 == 0 {
				at = now.Add(-40 * 24 * time.Hour)
			}
			spec := activity.TaskSpec{Queue: "default", Entrypoint: sh("echo a task of some typical size"), RetryPolicy: activity.RetryPolicy{Retries: 2}}.WithDefaults(at)
			ti := activity.NewTaskInstance(fmt.Sprintf("ti-%07d", i), spec, at)
			if err := ti.SetState(activity.StateRunning, "", at); err != nil {
				return err
			}
			if err := ti.SetState(activity.StateSuccess, "", at); err != nil {
				return err
			}
			b, err := ti.MarshalRecord()
			if err != nil {
				return err
			}
			_, err = kv.Put(ctx, ti.ID, b)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	bin := buildAll(t).executor
	var api *client.Client
	start := func(name string) (*testbin.Proc, time.Duration, int) {
		addr := testbin.FreeAddr(t)
		api, _ = client.New(client.Config{URL: "http://" + addr})
		t0 := time.Now()
		p := testbin.Start(t, name, bin, nil, "serve", "--nats-url", ns.ClientURL(), "--listen", addr,
			"--record-export-dir", t.TempDir(), "--log-level", "info")
		waitHealthy(t, "http://"+addr, p, nil)
		testbin.Eventually(t, 5*time.Minute, name+" ready", func() bool {
			st, _ := httpGet(t, "http://"+addr+"/readyz")
			return st == 200
		})
		return p, time.Since(t0), vmKB(t, p.Cmd.Process.Pid, "VmRSS")
	}
	p, took, rss := start("executor-1")
	t.Logf("%d finished records (%d past 30 days): ready in %s, RSS %d MB", n, n/2, took.Round(time.Millisecond), rss>>10)
	testbin.Eventually(t, 5*time.Minute, "old records deleted", func() bool {
		_, total, err := api.List(context.Background(), client.ListOpts{Limit: 1})
		return err == nil && total == n-n/2
	})
	p.Stop(10 * time.Second)
	_, took, rss = start("executor-2")
	t.Logf("after retention, %d records: ready in %s, RSS %d MB", n-n/2, took.Round(time.Millisecond), rss>>10)
}
