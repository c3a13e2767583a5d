package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// opsAPI serves canned workers, triggerers and queues, and drains "w1".
func opsAPI(t *testing.T) string {
	t.Helper()
	now := time.Now().UTC()
	w1 := activity.WorkerInfo{ID: "w1", Hostname: "host-a", Version: "v1", Queues: []string{"default", "go"}, Concurrency: 4,
		FreeSlots: 3, Running: 1, Runtimes: []string{"default=command", "go=gotasks"}, State: activity.MemberLive,
		StartedAt: now.Add(-time.Hour), LastHeartbeat: now}
	w2 := activity.WorkerInfo{ID: "w2", Hostname: "host-b", Queues: []string{"default"}, Concurrency: 2, FreeSlots: 0,
		Running: 2, State: activity.MemberLost, StartedAt: now.Add(-time.Hour), LastHeartbeat: now.Add(-time.Minute)}
	mux := http.NewServeMux()
	answer := func(status int, v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	mux.Handle("GET /api/v1/workers", answer(200, map[string]any{"workers": []activity.WorkerInfo{w1, w2}}))
	drained := w1
	drained.State = activity.MemberDraining
	mux.Handle("POST /api/v1/workers/w1/drain", answer(202, drained))
	mux.Handle("POST /api/v1/workers/w2/drain", answer(202, w2))
	mux.Handle("POST /api/v1/workers/{id}/drain", answer(404, map[string]string{"error": "not_found", "detail": "worker nope: not found"}))
	mux.Handle("GET /api/v1/triggerers", answer(200, map[string]any{"triggerers": []activity.TriggererInfo{
		{ID: "t1", Hostname: "host-c", Held: 12, State: activity.MemberLive, StartedAt: now.Add(-time.Hour), LastHeartbeat: now}}}))
	mux.Handle("GET /api/v1/queues", answer(200, map[string]any{"queues": []activity.QueueInfo{
		{Name: "default", Pending: 5, Running: 2, Deferred: 1, Workers: 1, FinishedLastMinute: 40, FailedLastMinute: 3}}}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestOpsCommands(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TASKWIRE_API_URL": opsAPI(t)}
	tests := []struct {
		args     []string
		wantCode int
		want     []string // in stdout, or stderr when the exit status is not 0
	}{
		{[]string{"workers"}, 0, []string{"ID", "STATE", "SLOTS", "w1", "live", "default,go", "3/4 free", "default=command,go=gotasks", "w2", "lost", "0/2 free"}},
		{[]string{"workers", "--json"}, 0, []string{`"workers": [`, `"free_slots": 3`, `"state": "lost"`}},
		{[]string{"workers", "drain", "w1"}, 0, []string{"w1 draining: stops pulling and finishes its 1 running task(s)"}},
		{[]string{"workers", "drain", "w1", "--json"}, 0, []string{`"state": "draining"`}},
		{[]string{"workers", "drain", "w2"}, 0, []string{"w2 lost: no heartbeat for 1m", "nothing to drain"}},
		{[]string{"workers", "drain", "nope"}, 2, []string{"404", "worker nope: not found"}},
		{[]string{"workers", "drain"}, 2, []string{"want 1 argument"}},
		{[]string{"workers", "bogus"}, 2, []string{`unknown argument "bogus"`}},
		{[]string{"triggerers"}, 0, []string{"HELD", "t1", "live", "host-c", "12"}},
		{[]string{"triggerers", "--json"}, 0, []string{`"held": 12`}},
		{[]string{"queues"}, 0, []string{"PENDING", "FINISHED/MIN", "default", "5", "40"}},
		{[]string{"queues", "--json"}, 0, []string{`"finished_last_minute": 40`, `"failed_last_minute": 3`}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			t.Parallel()
			c := newTestCLI(env)
			code := c.runCLI(t, tc.args...)
			got := c.out.String()
			if code != 0 {
				got = c.errOut.String()
			}
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.wantCode, c.out.String(), c.errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
