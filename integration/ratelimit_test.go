package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/internal/testbin"
)

// Many tasks deferred on http triggers polling one local server (every
// 50ms each), a rate limit of 20 req/s on its host, two triggerers: the
// server counts at most 20 requests in each wall-clock second (tolerance:
// one more, a token bucket of one token spaces requests 1/20 s apart, so
// a window can hold 21), and every task resumes once the server answers
// 200. The 1,000 tasks: a load test (services built without
// -race, see machine_test.go). They run in warm Go SDK processes (two, 8
// tasks each at once): what is tested is the triggers' polls against the
// shared limit, not a process start per try (2,000 of them, a deferral and
// a resume per task, were most of the test's CPU).
func TestRateLimitedWaits(t *testing.T) {
	parallel(t, shared)
	const (
		n   = 1000
		rps = 20
	)
	var (
		ready    atomic.Bool
		mu       sync.Mutex
		perSec   = map[int64]int{}
		total    atomic.Int64
		inflight atomic.Int64
		maxIn    atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxIn.Load()
			if in <= m || maxIn.CompareAndSwap(m, in) {
				break
			}
		}
		total.Add(1)
		mu.Lock()
		perSec[time.Now().Unix()]++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		if !ready.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "state: READY")
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	// A thousand tasks on a small shared machine: the zombie threshold is
	// not what this test checks (at a load of 55 from other work, 30 s went
	// by without a try's heartbeat being written).
	c := newCluster(t, clusterOpts{logLevel: "info", zombieThreshold: "2m", load: true})
	info := []string{"--log-level", "info"}
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "queues:\n  go:\n    command: [%q, --comm, \"{comm_addr}\", --logs, \"{logs_addr}\"]\n    warm: {processes: 2, tasks_per_process: 8}\n",
		c.bins.gotasks), 0o600); err != nil {
		t.Fatal(err)
	}
	c.startWorker(workerOpts{queues: "go", concurrency: 16, config: cfg, extra: info})
	c.startTriggerer(triggererOpts{name: "trig-a", extra: info})
	c.startTriggerer(triggererOpts{name: "trig-b", extra: info})
	if out, errOut, code := c.cli("limits", "set", host, "--rps", fmt.Sprint(rps), "--concurrent", "5"); code != 0 || !strings.Contains(out, "20 requests/s") {
		t.Fatalf("limits set: exit %d: %s%s", code, out, errOut)
	}
	if out, _, _ := c.cli("limits"); !strings.Contains(out, host) {
		t.Fatalf("limits list lacks %s:\n%s", host, out)
	}
	ids := c.submitMany(n, func(i int) activity.TaskSpec {
		s := goTask("wait_http", map[string]any{"url": srv.URL + "/status", "contains": "READY"})
		s.TaskID = fmt.Sprintf("wait-%d", i)
		return s
	})
	testbin.EventuallyEvery(t, 300*time.Second, countPoll, "every task deferred", func() bool {
		got, err := c.count(activity.StateDeferred)
		return err == nil && got == n
	})
	// Let them poll against the limit a while, then answer 200.
	before := total.Load()
	time.Sleep(3 * time.Second)
	ready.Store(true)
	released := time.Now()
	c.waitFinished(n, 600*time.Second)
	took := time.Since(released)
	for _, id := range ids {
		ti, err := c.api.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ti.State != activity.StateSuccess {
			t.Errorf("%s: %s (%s)", ti.TaskID, ti.State, ti.Reason)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	worst, over := 0, 0
	for _, v := range perSec {
		worst = max(worst, v)
		if v > rps+1 {
			over++
		}
	}
	t.Logf("%d tasks, 2 triggerers, limit %d req/s: %d requests in %d seconds, at most %d in one second, %d requests in flight at most; all resumed %s after the release (at least %.0fs at the limit)",
		n, rps, total.Load(), len(perSec), worst, maxIn.Load(), took.Round(100*time.Millisecond), float64(n)/rps)
	if over > 0 {
		t.Errorf("%d seconds had more than %d requests (worst %d): %v", over, rps+1, worst, perSec)
	}
	if maxIn.Load() > 5 {
		t.Errorf("%d requests in flight at once, limit 5", maxIn.Load())
	}
	if total.Load()-before < 2*rps {
		t.Errorf("only %d requests in the 3s before the release: the triggers did not poll", total.Load()-before)
	}
}
