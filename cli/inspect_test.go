package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

// fakeAPI serves canned public-API answers. Reading task instance "t"
// walks through states; the instance ends in final.
//
// With deferral, try 1 defers once instead of failing: queued, running,
// deferred, queued (resuming), running, final, all on try 1. Task instance
// "d" is deferred, and listed after "t"; POST events/{name} records the
// bodies it gets in events.
type fakeAPI struct {
	final    activity.State
	deferral bool

	mu     sync.Mutex
	reads  int
	specs  []activity.TaskSpec
	events []string
}

// deferredInstance is task instance "d", deferred on a timedelta trigger at
// 10:00:00 after running 1.5s.
func deferredInstance() activity.TaskInstance {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	start := t0.Add(-time.Minute)
	return activity.TaskInstance{ID: "d", DagID: "adhoc", TaskID: "wait", RunID: "r1", MapIndex: -1, Queue: "default",
		State: activity.StateDeferred, TryNumber: 1, MaxTries: 1, UpdatedAt: t0, StartDate: &start,
		RunTime: activity.Duration(1500 * time.Millisecond), Entrypoint: activity.Entrypoint{Task: "wait_for_it"},
		NextMethod: "execute_complete", NextKwargs: map[string]any{"n": 1.0},
		Trigger: &activity.Trigger{ID: "d.1", Classpath: "airflow.triggers.temporal.TimeDeltaTrigger", Kind: "timedelta",
			Kwargs: map[string]any{"moment": "2026-11-22T10:05:00Z"}, Timeout: activity.Duration(time.Hour),
			TIID: "d", Try: 1, DeferredAt: t0},
		Tries: []activity.Try{{TryNumber: 1, State: activity.StateDeferred, StartDate: &start}},
	}
}

func (f *fakeAPI) start(t *testing.T) string {
	t.Helper()
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	t1 := t0.Add(1500 * time.Millisecond)
	instance := func(st activity.State, try int) activity.TaskInstance {
		ti := activity.TaskInstance{ID: "t", DagID: "adhoc", TaskID: "echo", RunID: "r1", MapIndex: -1, Queue: "default",
			State: st, TryNumber: try, MaxTries: 2, Hostname: "host-a", UpdatedAt: t0,
			Entrypoint: activity.Entrypoint{Command: []string{"sh", "-c", "echo 'hi'"}}}
		for i := 1; i <= try; i++ {
			tr := activity.Try{TryNumber: i, State: activity.StateFailed, Hostname: "host-a", StartDate: &t0, EndDate: &t1, Reason: "exit status 1"}
			if i == try {
				tr.State = st
				if !st.Terminal() && st != activity.StateUpForRetry {
					tr.EndDate, tr.Reason = nil, ""
				}
			}
			ti.Tries = append(ti.Tries, tr)
		}
		if st == activity.StateFailed || st == activity.StateUpForRetry {
			ti.Reason = "exit status 1"
		}
		return ti
	}
	walk := []activity.TaskInstance{
		instance(activity.StateQueued, 1), instance(activity.StateRunning, 1), instance(activity.StateUpForRetry, 1),
		instance(activity.StateQueued, 2), instance(activity.StateRunning, 2), instance(f.final, 2),
	}
	if f.deferral {
		deferred := instance(activity.StateDeferred, 1)
		deferred.NextMethod = "execute_complete"
		deferred.Trigger = &activity.Trigger{ID: "t.1", Classpath: "taskwire.triggers.timedelta", Kind: "timedelta",
			Kwargs: map[string]any{"moment": "2026-11-22T10:00:05Z"}, TIID: "t", Try: 1, DeferredAt: t0}
		resumed := instance(activity.StateQueued, 1)
		resumed.NextMethod, resumed.NextKwargs = "execute_complete", map[string]any{"event": "done"}
		walk = []activity.TaskInstance{
			instance(activity.StateQueued, 1), instance(activity.StateRunning, 1), deferred,
			resumed, instance(activity.StateRunning, 1), instance(f.final, 1),
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/activities", func(w http.ResponseWriter, r *http.Request) {
		var s activity.TaskSpec
		_ = json.NewDecoder(r.Body).Decode(&s)
		f.mu.Lock()
		f.specs = append(f.specs, s)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(walk[0])
	})
	mux.HandleFunc("GET /api/v1/task-instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "d" {
			_ = json.NewEncoder(w).Encode(deferredInstance())
			return
		}
		if r.PathValue("id") != "t" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"not_found","detail":"task instance %s: not found"}`, r.PathValue("id"))
			return
		}
		f.mu.Lock()
		i := min(f.reads, len(walk)-1)
		f.reads++
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(walk[i])
	})
	mux.HandleFunc("GET /api/v1/task-instances", func(w http.ResponseWriter, r *http.Request) {
		tis := []activity.TaskInstance{walk[len(walk)-1], deferredInstance()}
		_ = json.NewEncoder(w).Encode(map[string]any{"task_instances": tis, "total": 3})
	})
	mux.HandleFunc("POST /api/v1/events/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := activity.ValidateEventName(r.PathValue("name")); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_request", "detail": err.Error()})
			return
		}
		f.mu.Lock()
		f.events = append(f.events, string(body))
		f.mu.Unlock()
		ev := activity.ExternalEvent{Name: r.PathValue("name"), SentAt: t0}
		if len(body) > 0 {
			_ = json.Unmarshal(body, &ev.Payload)
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(ev)
	})
	mux.HandleFunc("GET /api/v1/task-instances/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"try":1,"timestamp":"2026-11-22T10:00:00.25Z","level":"info","logger":"task.stdout","event":"hello"}`)
		fmt.Fprintln(w, `{"try":2,"timestamp":"2026-11-22T10:00:01Z","level":"error","logger":"task","event":"boom","error":"disk full","code":28}`)
	})
	mux.HandleFunc("GET /api/v1/variables/{key}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(activity.Variable{Key: r.PathValue("key"), Value: "hello there"})
	})
	mux.HandleFunc("GET /api/v1/connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(activity.Connection{ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Password: "***", Extra: map[string]any{"sslmode": "require"}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestSubmitWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		final    activity.State
		wantCode int
		wantLast string
	}{
		{activity.StateSuccess, 0, "success (try 2)"},
		{activity.StateSkipped, 0, "skipped (try 2)"},
		{activity.StateFailed, 1, "failed (try 2: exit status 1)"},
	}
	for _, tc := range tests {
		t.Run(string(tc.final), func(t *testing.T) {
			t.Parallel()
			f := &fakeAPI{final: tc.final}
			c := newTestCLI(map[string]string{"TASKWIRE_API_URL": f.start(t)})
			code := c.runCLI(t, "submit", "--wait", "--retries", "1", "--", "sh", "-c", "echo 'hi'")
			if code != tc.wantCode {
				t.Errorf("exit status %d, want %d; stderr %s", code, tc.wantCode, c.errOut.String())
			}
			want := "t\nqueued\nrunning (try 1 on host-a)\nup_for_retry (try 1: exit status 1)\nqueued (try 2)\nrunning (try 2 on host-a)\n" + tc.wantLast + "\n"
			if got := c.out.String(); got != want {
				t.Errorf("stdout\n%s\nwant\n%s", got, want)
			}
			if len(f.specs) != 1 || f.specs[0].Retries != 1 || len(f.specs[0].Command) != 3 {
				t.Errorf("server got specs %+v", f.specs)
			}
		})
	}
}

func TestSubmitWaitDeferral(t *testing.T) {
	t.Parallel()
	f := &fakeAPI{final: activity.StateSuccess, deferral: true}
	c := newTestCLI(map[string]string{"TASKWIRE_API_URL": f.start(t)})
	if code := c.runCLI(t, "submit", "--wait", "--task", "wait_for_it"); code != 0 {
		t.Errorf("exit status %d, want 0; stderr %s", code, c.errOut.String())
	}
	want := "t\nqueued\nrunning (try 1 on host-a)\ndeferred (try 1: waiting on timedelta)\n" +
		"queued (try 1, resuming execute_complete)\nrunning (try 1 on host-a)\nsuccess (try 1)\n"
	if got := c.out.String(); got != want {
		t.Errorf("stdout\n%s\nwant\n%s", got, want)
	}
}

func TestInspectCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string // lines (whitespace-collapsed) of stdout, in order
		wantErr  string
	}{
		{"get", []string{"get", "t", "--api-url", "URL"}, 0, []string{
			"ID t", "DAG ID adhoc", "TASK ID echo", "RUN ID r1", "QUEUE default", "STATE queued", "TRY 1 of 2",
			"ENTRYPOINT sh -c 'echo '\\''hi'\\'''", "HOST host-a", "UPDATED 2026-11-22T10:00:00Z", "",
			"TRY STATE HOST STARTED ENDED DURATION REASON",
			"1 queued host-a 2026-11-22T10:00:00Z - - -",
		}, ""},
		{"get_missing", []string{"get", "nope", "--api-url", "URL"}, 2, nil, "404 not_found: task instance nope: not found"},
		{"get_deferred", []string{"get", "d", "--api-url", "URL"}, 0, []string{
			"ID d", "DAG ID adhoc", "TASK ID wait", "RUN ID r1", "QUEUE default", "STATE deferred", "TRY 1 of 1",
			"ENTRYPOINT task wait_for_it",
			`TRIGGER timedelta (airflow.triggers.temporal.TimeDeltaTrigger) {"moment":"2026-11-22T10:05:00Z"}, timeout 1h0m0s`,
			"TRIGGER ID d.1", "DEFERRED AT 2026-11-22T10:00:00Z", "NEXT METHOD execute_complete",
			"STARTED 2026-11-22T09:59:00Z", "RUN TIME 1.5s", "UPDATED 2026-11-22T10:00:00Z", "",
			"TRY STATE HOST STARTED ENDED DURATION REASON",
			"1 deferred - 2026-11-22T09:59:00Z - - -",
		}, ""},
		{"list", []string{"list", "--api-url", "URL", "--limit", "2"}, 0, []string{
			"ID DAG ID TASK ID RUN ID QUEUE STATE TRY UPDATED TRIGGER DEFERRED AT",
			"t adhoc echo r1 default success 2/2 2026-11-22T10:00:00Z - -",
			"d adhoc wait r1 default deferred 1/1 2026-11-22T10:00:00Z timedelta 2026-11-22T10:00:00Z",
		}, "(2 of 3 shown"},
		{"logs", []string{"logs", "t", "--api-url", "URL"}, 0, []string{
			"=== try 1",
			"2026-11-22T10:00:00.250Z info task.stdout hello",
			"=== try 2",
			`2026-11-22T10:00:01.000Z error task boom code=28 error="disk full"`,
		}, ""},
		{"logs_one_try", []string{"logs", "t", "--try", "2", "--api-url", "URL"}, 0, []string{
			"2026-11-22T10:00:00.250Z info task.stdout hello",
			`2026-11-22T10:00:01.000Z error task boom code=28 error="disk full"`,
		}, ""},
		{"variable_get", []string{"variables", "get", "greeting", "--api-url", "URL"}, 0, []string{"hello there"}, ""},
		{"connection_get", []string{"connections", "get", "db", "--api-url", "URL"}, 0, []string{
			"CONN ID db", "TYPE postgres", "HOST db.internal", "PORT 5432", "SCHEMA -", "LOGIN -", "PASSWORD ***", `EXTRA {"sslmode":"require"}`,
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeAPI{final: activity.StateSuccess}
			url := f.start(t)
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				if a == "URL" {
					args[i] = url
				}
			}
			c := newTestCLI(nil)
			if code := c.runCLI(t, args...); code != tc.wantCode {
				t.Errorf("exit status %d, want %d; stderr %s", code, tc.wantCode, c.errOut.String())
			}
			var got []string
			for _, l := range strings.Split(strings.TrimRight(c.out.String(), "\n"), "\n") {
				got = append(got, strings.Join(strings.Fields(l), " "))
			}
			if tc.want != nil && strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("stdout\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if !strings.Contains(c.errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q does not contain %q", c.errOut.String(), tc.wantErr)
			}
		})
	}
}

func TestFormatLogLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ raw, want string }{
		{`{"timestamp":"2026-11-22T10:00:00Z","level":"info","logger":"task","event":"x"}`, "2026-11-22T10:00:00.000Z info  task x"},
		{`{"event":"no metadata"}`, "- -     - no metadata"},
		{`{"event":"kv","a":"b c","n":1.5,"m":{"k":1},"ok":"plain"}`, `- -     - kv a="b c" m={"k":1} n=1.5 ok=plain`},
	}
	for _, tc := range tests {
		var l client.LogLine
		var m map[string]any
		_ = json.Unmarshal([]byte(tc.raw), &m)
		l.Event, _ = m["event"].(string)
		l.Level, _ = m["level"].(string)
		l.Logger, _ = m["logger"].(string)
		if s, ok := m["timestamp"].(string); ok {
			l.Timestamp, _ = time.Parse(time.RFC3339, s)
		}
		l.Raw = json.RawMessage(tc.raw)
		if got := formatLogLine(l); got != tc.want {
			t.Errorf("formatLogLine(%s) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}
