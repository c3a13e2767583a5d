package executor

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// call sends a request to the fixture's HTTP server, with the bearer
// token when not empty, and returns the status and body.
func (f *fixture) call(method, path, token string) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// runTo takes ti's activity from queue q, runs it and reports state st.
func (f *fixture) runTo(q string, ti *activity.TaskInstance, st activity.State) execution.RunResponse {
	f.t.Helper()
	act, m := f.take(q)
	_ = m.Ack()
	if act.TI.ID != ti.ID {
		f.t.Fatalf("took the activity of %s, want %s", act.TI.ID, ti.ID)
	}
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(f.t.Context(), act.Token, ti.ID, req)
	if err != nil {
		f.t.Fatal(err)
	}
	if st != activity.StateRunning {
		if err := f.ec.Task(ti.ID, rr.Token).State(f.t.Context(), execution.StateRequest{State: st, Reason: "exit code 3"}); err != nil {
			f.t.Fatal(err)
		}
	}
	return rr
}

func TestRetryFailedTaskStartsANewTry(t *testing.T) {
	t.Parallel()
	const token = "op-secret"
	f := newFixture(t, queue.Config{}, Config{OperatorToken: token})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	f.runTo("q", ti, activity.StateFailed)
	path := "/api/v1/task-instances/" + ti.ID + "/retry"

	if status, body := f.call("POST", path, ""); status != http.StatusUnauthorized {
		t.Fatalf("retry without the operator token: %d %s, want 401", status, body)
	}
	if got, _ := f.ex.Get(t.Context(), ti.ID); got.State != activity.StateFailed {
		t.Fatalf("a refused retry changed the task to %s", got.State)
	}

	status, body := f.call("POST", path, token)
	if status != http.StatusAccepted {
		t.Fatalf("retry: %d %s, want 202", status, body)
	}
	var got activity.TaskInstance
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	// The task had no retries left: the operator's retry allows one more try.
	if got.State != activity.StateQueued || got.TryNumber != 2 || got.MaxTries != 2 || len(got.Tries) != 2 ||
		got.Tries[0].State != activity.StateFailed {
		t.Fatalf("after retry: state %s try %d of %d, tries %+v; want queued try 2 of 2 after a failed try 1",
			got.State, got.TryNumber, got.MaxTries, got.Tries)
	}
	// The new try is on the queue, and runs.
	rr := f.runTo("q", ti, activity.StateRunning)
	if rr.TI.TryNumber != 2 {
		t.Fatalf("retried activity runs try %d, want 2", rr.TI.TryNumber)
	}

	// Only a failed task may be retried: a running one is refused, and
	// so is a second retry racing the first.
	status, body = f.call("POST", path, token)
	if status != http.StatusConflict || !strings.Contains(string(body), "only a failed task can be retried") {
		t.Fatalf("retry of a running task: %d %s, want 409 with a reason", status, body)
	}
	if got, _ := f.ex.Get(t.Context(), ti.ID); got.State != activity.StateRunning || got.TryNumber != 2 {
		t.Fatalf("a refused retry changed the task: %s try %d", got.State, got.TryNumber)
	}
}

func TestRetryRefusesOtherStates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	queued := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	done := f.submit(activity.TaskSpec{Queue: "s", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	f.runTo("s", done, activity.StateSuccess)
	cancelled := f.submit(activity.TaskSpec{Queue: "c", Entrypoint: activity.Entrypoint{Command: []string{"x"}}})
	if _, err := f.ex.Cancel(t.Context(), cancelled.ID, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id string
		want     int
		detail   string
	}{
		{"queued", queued.ID, http.StatusConflict, "is queued"},
		{"success", done.ID, http.StatusConflict, "is success"},
		{"cancelled", cancelled.ID, http.StatusConflict, "is cancelled"},
		{"unknown", "no-such-task", http.StatusNotFound, "no-such-task"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.call("POST", "/api/v1/task-instances/"+tc.id+"/retry", "")
			var eb execution.ErrorBody
			_ = json.Unmarshal(body, &eb)
			if status != tc.want || !strings.Contains(eb.Detail, tc.detail) {
				t.Errorf("retry: %d %s, want %d mentioning %q", status, body, tc.want, tc.detail)
			}
		})
	}
}
