package executor

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/triggerer"
)

// The shapes of the shared API contract, decoded independently of the
// handlers' own types.
type (
	apiQueue struct {
		Name               string `json:"name"`
		Pending            int    `json:"pending"`
		Running            int    `json:"running"`
		Deferred           int    `json:"deferred"`
		Workers            int    `json:"workers"`
		FinishedLastMinute int    `json:"finished_last_minute"`
		FailedLastMinute   int    `json:"failed_last_minute"`
	}
	apiTriggerer struct {
		ID            string    `json:"id"`
		Hostname      string    `json:"hostname"`
		Held          int       `json:"held"`
		State         string    `json:"state"`
		StartedAt     time.Time `json:"started_at"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
	}
)

// getJSON GETs path with the token and decodes a 200 answer into out.
func (f *fixture) getJSON(path, token string, out any) {
	f.t.Helper()
	status, body := f.call("GET", path, token)
	if status != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		f.t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

func TestOperatorViewsNeedTheToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{OperatorToken: "op-secret"})
	for _, p := range []string{"/api/v1/workers", "/api/v1/triggerers", "/api/v1/queues"} {
		if status, body := f.call("GET", p, ""); status != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d %s, want 401", p, status, body)
		}
		if status, body := f.call("GET", p, "wrong"); status != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d %s, want 401", p, status, body)
		}
		if status, body := f.call("GET", p, "op-secret"); status != http.StatusOK {
			t.Errorf("GET %s: %d %s, want 200", p, status, body)
		}
	}
	// The dashboard's actions are refused without the token and change nothing.
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	for _, action := range []string{"cancel", "retry"} {
		if status, body := f.call("POST", "/api/v1/task-instances/"+ti.ID+"/"+action, ""); status != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d %s, want 401", action, status, body)
		}
	}
	if got, _ := f.ex.Get(t.Context(), ti.ID); got.State != activity.StateQueued {
		t.Errorf("refused actions changed the task to %s", got.State)
	}
	// The dashboard's page holds no data and loads without the token; the
	// API calls it makes need it.
	if status, body := f.call("GET", "/", ""); status != http.StatusOK || !strings.Contains(string(body), "taskwire") {
		t.Errorf("GET / (dashboard): %d %.200s, want the page", status, body)
	}
	var ws map[string][]json.RawMessage
	f.getJSON("/api/v1/workers", "op-secret", &ws)
	if list, ok := ws["workers"]; !ok || list == nil {
		t.Errorf("workers answer %v: want a workers list, empty rather than null", ws)
	}
}

func TestQueuesCountTheRecords(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	spec := func(q string) activity.TaskSpec {
		return activity.TaskSpec{Queue: q, Entrypoint: activity.Entrypoint{Command: []string{"x"}}}
	}
	f.runTo("a", f.submit(spec("a")), activity.StateSuccess)
	f.runTo("a", f.submit(spec("a")), activity.StateFailed)
	f.runTo("b", f.submit(spec("b")), activity.StateRunning)
	f.submit(spec("b"))

	var got struct {
		Queues []apiQueue `json:"queues"`
	}
	f.getJSON("/api/v1/queues", "", &got)
	want := []apiQueue{
		{Name: "a", FinishedLastMinute: 2, FailedLastMinute: 1},
		{Name: "b", Pending: 1, Running: 1},
	}
	if len(got.Queues) != len(want) {
		t.Fatalf("queues %+v, want %+v", got.Queues, want)
	}
	for i := range want {
		if got.Queues[i] != want[i] {
			t.Errorf("queue %d: %+v, want %+v", i, got.Queues[i], want[i])
		}
	}
}

func TestTriggerersLiveAndLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	tr, err := triggerer.New(triggerer.Config{Queue: f.q, ID: "trig-live", HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			if err := tr.Stop(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(stop)
	// A triggerer that died five minutes ago left its last heartbeat.
	old := time.Now().UTC().Add(-5 * time.Minute)
	stale, _ := json.Marshal(map[string]any{"id": "trig-dead", "hostname": "gone", "held": 3, "at": old, "started_at": old.Add(-time.Hour)})
	if _, err := f.q.Bucket(queue.BucketTriggerers).Put(t.Context(), "trig-dead", stale); err != nil {
		t.Fatal(err)
	}

	var got struct {
		Triggerers []apiTriggerer `json:"triggerers"`
	}
	f.getJSON("/api/v1/triggerers", "", &got)
	if len(got.Triggerers) != 2 {
		t.Fatalf("triggerers %+v, want trig-dead and trig-live", got.Triggerers)
	}
	dead, live := got.Triggerers[0], got.Triggerers[1]
	if dead.ID != "trig-dead" || dead.State != "lost" || dead.Held != 3 || !dead.LastHeartbeat.Equal(old) {
		t.Errorf("dead triggerer %+v, want lost with its last heartbeat", dead)
	}
	if live.ID != "trig-live" || live.State != "live" || live.Hostname == "" ||
		live.StartedAt.IsZero() || time.Since(live.LastHeartbeat) > time.Minute || live.StartedAt.After(live.LastHeartbeat) {
		t.Errorf("live triggerer %+v, want live with its start and heartbeat times", live)
	}
	// A triggerer that stops says goodbye: it is no longer listed.
	stop()
	f.getJSON("/api/v1/triggerers", "", &got)
	if len(got.Triggerers) != 1 || got.Triggerers[0].ID != "trig-dead" {
		t.Errorf("after the stop: %+v, want only trig-dead", got.Triggerers)
	}
}
