package executor

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

// TestRegistryAPI reads workers and triggerers as they write themselves to
// their buckets: live, lost (heartbeat older than LostAfter, still listed)
// and draining; drains one; shows the queues; refuses unknown ids (404) and
// requests without the operator token (401).
func TestRegistryAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{OperatorToken: "op", LostAfter: time.Minute})
	ctx := t.Context()
	now := time.Now().UTC()
	put := func(bucket, key string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if _, err := f.q.Bucket(bucket).Put(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	worker := func(id string, at time.Time) activity.WorkerInfo {
		return activity.WorkerInfo{ID: id, Hostname: "h-" + id, Version: "v1", Queues: []string{"qa"}, Concurrency: 4,
			FreeSlots: 3, Running: 1, Runtimes: []string{"qa=command"}, State: activity.MemberLive,
			StartedAt: at.Add(-time.Hour), LastHeartbeat: at}
	}
	put(queue.BucketWorkers, queue.WorkerKey("w1"), worker("w1", now))
	put(queue.BucketWorkers, queue.WorkerKey("w2"), worker("w2", now.Add(-2*time.Minute)))
	put(queue.BucketWorkers, queue.WorkerKey("w3"), worker("w3", now))
	put(queue.BucketWorkers, queue.DrainKey("w3"), now)
	put(queue.BucketTriggerers, "t1", map[string]any{"id": "t1", "hostname": "h", "held": 7, "capacity": 10, "at": now, "started_at": now.Add(-time.Hour)})
	put(queue.BucketTriggerers, "t2", map[string]any{"id": "t2", "held": 1, "at": now.Add(-2 * time.Minute)})

	do := func(method, path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, body := do("GET", "/api/v1/workers", "op")
	var ws struct{ Workers []map[string]any }
	if err := json.Unmarshal(body, &ws); status != 200 || err != nil || len(ws.Workers) != 3 {
		t.Fatalf("GET workers: %d %s", status, body)
	}
	var states []string
	for _, w := range ws.Workers {
		states = append(states, w["id"].(string)+"="+w["state"].(string))
		for _, k := range []string{"id", "hostname", "version", "queues", "concurrency", "free_slots", "running", "runtimes", "state", "started_at", "last_heartbeat"} {
			if _, ok := w[k]; !ok {
				t.Errorf("worker %v has no %q", w["id"], k)
			}
		}
	}
	if got := strings.Join(states, ","); got != "w1=live,w2=lost,w3=draining" {
		t.Errorf("worker states %s", got)
	}

	// Queue qa: one activity pending, w1 is the one live worker serving it.
	if _, err := f.q.ActivityConsumer(ctx, "qa"); err != nil {
		t.Fatal(err)
	}
	f.submit(activity.TaskSpec{Queue: "qa", Entrypoint: activity.Entrypoint{Command: []string{"true"}}})
	status, body = do("GET", "/api/v1/queues", "op")
	var qs struct{ Queues []activity.QueueInfo }
	if err := json.Unmarshal(body, &qs); status != 200 || err != nil ||
		!slices.Contains(qs.Queues, activity.QueueInfo{Name: "qa", Pending: 1, Workers: 1}) {
		t.Errorf("GET queues: %d %s", status, body)
	}

	status, body = do("POST", "/api/v1/workers/w1/drain", "op")
	var drained activity.WorkerInfo
	if err := json.Unmarshal(body, &drained); status != http.StatusAccepted || err != nil || drained.ID != "w1" || drained.State != activity.MemberDraining {
		t.Errorf("POST drain w1: %d %s", status, body)
	}
	if _, err := f.q.Bucket(queue.BucketWorkers).Get(ctx, queue.DrainKey("w1")); err != nil {
		t.Errorf("drain request not stored: %v", err)
	}

	status, body = do("GET", "/api/v1/triggerers", "op")
	var ts struct{ Triggerers []activity.TriggererInfo }
	if err := json.Unmarshal(body, &ts); status != 200 || err != nil || len(ts.Triggerers) != 2 ||
		ts.Triggerers[0].ID != "t1" || ts.Triggerers[0].State != activity.MemberLive || ts.Triggerers[0].Held != 7 ||
		ts.Triggerers[0].StartedAt.IsZero() || ts.Triggerers[1].State != activity.MemberLost {
		t.Errorf("GET triggerers: %d %s", status, body)
	}

	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/api/v1/workers/nope/drain", "op", 404},
		{"POST", "/api/v1/workers/a%20b/drain", "op", 404},
		{"POST", "/api/v1/workers/w1/drain", "", 401},
		{"GET", "/api/v1/workers", "", 401},
		{"GET", "/api/v1/triggerers", "wrong", 401},
		{"GET", "/api/v1/queues", "", 401},
	} {
		status, body := do(tc.method, tc.path, tc.token)
		var eb struct{ Error, Detail string }
		if status != tc.want || json.Unmarshal(body, &eb) != nil || eb.Error == "" || eb.Detail == "" {
			t.Errorf("%s %s: %d %s, want %d with a message", tc.method, tc.path, status, body, tc.want)
		}
	}
}
