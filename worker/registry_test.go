package worker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// TestRegistryAndDrain: the worker keeps its registry entry up to date, a
// drain request makes it finish its running task and pull nothing more,
// and Stop removes the entry. Its metrics count the task.
func TestRegistryAndDrain(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	h := newHarness(t, func(c *Config) { c.ID, c.Concurrency, c.Metrics = "w-drain", 2, m })
	kv := h.qc.Bucket(queue.BucketWorkers)
	entry := func() activity.WorkerInfo {
		t.Helper()
		e, err := kv.Get(context.Background(), queue.WorkerKey("w-drain"))
		if err != nil {
			t.Fatal(err)
		}
		var wi activity.WorkerInfo
		if err := json.Unmarshal(e.Value(), &wi); err != nil {
			t.Fatal(err)
		}
		return wi
	}
	wi := entry()
	if wi.ID != "w-drain" || wi.State != activity.MemberLive || wi.Concurrency != 2 || wi.FreeSlots != 2 ||
		strings.Join(wi.Queues, ",") != "default" || strings.Join(wi.Runtimes, ",") != "default=command" ||
		wi.Version == "" || wi.Hostname == "" || wi.StartedAt.IsZero() || wi.LastHeartbeat.IsZero() {
		t.Errorf("registry entry %+v", wi)
	}

	release := filepath.Join(t.TempDir(), "release")
	h.execute("ti-running", "default", activity.Entrypoint{Command: []string{"sh", "-c",
		"while [ ! -e " + release + " ]; do sleep 0.02; done"}}, fakeTI{}, nil)
	testbin.Eventually(t, waitTimeout, "entry with one running task", func() bool {
		wi := entry()
		return wi.Running == 1 && wi.FreeSlots == 1
	})
	if _, err := kv.Put(context.Background(), queue.DrainKey("w-drain"), []byte("now")); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, waitTimeout, "entry draining", func() bool { return h.w.Draining() && entry().State == activity.MemberDraining })
	// The worker read its drain request without a consumer of its own: a
	// stream allows 1,000 consumers, and 1,000 workers watching their drain
	// keys took them all (issue 17, item 5).
	info, err := queuetest.Stream(context.Background(), h.qc.Conn(), "KV_"+queue.BucketWorkers)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Consumers; n != 0 {
		t.Errorf("workers bucket: %d consumers, want none", n)
	}
	h.execute("ti-after", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantState(t, h.waitState("ti-running"), activity.StateSuccess, "")
	testbin.Eventually(t, waitTimeout, "entry drained", func() bool { return entry().Running == 0 })
	if n, err := h.qc.ActivityPending(context.Background()); err != nil || n["default"] != 1 {
		t.Errorf("pending activities %v %v: want the one submitted after the drain", n, err)
	}
	if len(h.api.statesOf("ti-after")) != 0 {
		t.Error("a draining worker ran a task")
	}
	if got := testutil.ToFloat64(m.started.WithLabelValues("default")); got != 1 {
		t.Errorf("tasks started %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.finished.WithLabelValues("default", "success")); got != 1 {
		t.Errorf("tasks finished %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.duration); got != 1 {
		t.Errorf("duration series %d, want 1", got)
	}

	if err := h.w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), queue.WorkerKey("w-drain")); !errors.Is(err, queue.ErrKeyNotFound) {
		t.Errorf("entry after Stop: %v, want it deleted", err)
	}
}
