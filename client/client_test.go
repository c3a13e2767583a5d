package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every call of these tests.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// serve starts an HTTP server on 127.0.0.1 with the handlers of routes
// (http.ServeMux patterns) and returns a Client for it.
func serve(t *testing.T, token string, routes map[string]http.HandlerFunc) *client.Client {
	t.Helper()
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.HandleFunc(p, h)
	}
	srv := httptest.NewServer(mux)
	c, err := client.New(client.Config{URL: srv.URL + "/", Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, detail string) {
	writeJSON(w, status, map[string]string{"error": code, "detail": detail})
}

func TestNewRefusesBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://h/?q=1", "://x"} {
		if _, err := client.New(client.Config{URL: u}); err == nil {
			t.Errorf("New(%q) = nil error, want one", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "https://taskwire.example.com/prefix/"} {
		if _, err := client.New(client.Config{URL: u}); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	var got activity.TaskSpec
	c := serve(t, "s3cret", map[string]http.HandlerFunc{
		"POST /api/v1/activities": func(w http.ResponseWriter, r *http.Request) {
			if h := r.Header.Get("Authorization"); h != "Bearer s3cret" {
				writeError(w, 401, "unauthorized", "got "+h)
				return
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				writeError(w, 400, "bad_request", "content type "+ct)
				return
			}
			if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
				writeError(w, 400, "bad_request", err.Error())
				return
			}
			s := got.WithDefaults(time.Now())
			writeJSON(w, 201, activity.NewTaskInstance("ti-1", s, time.Now()))
		},
	})
	spec := activity.TaskSpec{
		Queue: "default", TaskID: "greet", ExecutionTimeout: activity.Duration(time.Minute),
		Entrypoint:  activity.Entrypoint{Command: []string{"echo", "hi"}, Env: map[string]string{"A": "1"}},
		RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: activity.Duration(time.Second)},
	}
	ti, err := c.Submit(testContext(t), spec)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if !reflect.DeepEqual(got, spec) {
		t.Errorf("server got spec %+v, want %+v", got, spec)
	}
	if ti.ID != "ti-1" || ti.State != activity.StateQueued || ti.TaskID != "greet" || ti.MaxTries != 3 {
		t.Errorf("Submit = %+v", ti)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		want       error
		wantCode   string
		wantDetail string
	}{
		{"bad_request", 400, `{"error":"bad_request","detail":"queue \"A\" must match"}`, client.ErrBadRequest, "bad_request", `queue "A" must match`},
		{"too_large", 413, `{"error":"too_large","detail":"body"}`, client.ErrBadRequest, "too_large", "body"},
		{"unauthorized", 401, `{"error":"unauthorized","detail":"token"}`, client.ErrUnauthorized, "unauthorized", "token"},
		{"forbidden", 403, `{"error":"forbidden","detail":"no"}`, client.ErrForbidden, "forbidden", "no"},
		{"not_found", 404, `{"error":"not_found","detail":"task instance x"}`, client.ErrNotFound, "not_found", "task instance x"},
		{"conflict", 409, `{"error":"conflict","detail":"illegal state transition success → cancelled"}`, client.ErrConflict, "conflict", "illegal state transition success → cancelled"},
		{"proxy_page", 502, "<html>Bad Gateway</html>\n", nil, "bad_gateway", "<html>Bad Gateway</html>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := serve(t, "", map[string]http.HandlerFunc{
				"GET /api/v1/task-instances/{id}": func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(tc.status)
					_, _ = w.Write([]byte(tc.body))
				},
			})
			_, err := c.Get(testContext(t), "x")
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Get error %v (%T), want an *APIError", err, err)
			}
			if ae.Status != tc.status || ae.Code != tc.wantCode || ae.Detail != tc.wantDetail {
				t.Errorf("APIError = %+v, want status %d code %q detail %q", ae, tc.status, tc.wantCode, tc.wantDetail)
			}
			for _, s := range []error{client.ErrBadRequest, client.ErrUnauthorized, client.ErrForbidden, client.ErrNotFound, client.ErrConflict} {
				if got := errors.Is(err, s); got != (s == tc.want) {
					t.Errorf("errors.Is(err, %v) = %v", s, got)
				}
			}
			if !strings.Contains(err.Error(), "get task instance x") {
				t.Errorf("error %q does not name the operation", err)
			}
		})
	}
}

func TestRefusesEmptyIDWithoutARequest(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	c := serve(t, "", map[string]http.HandlerFunc{
		"/": func(w http.ResponseWriter, r *http.Request) { calls.Add(1); writeJSON(w, 200, map[string]any{}) },
	})
	ctx := testContext(t)
	_, err1 := c.Get(ctx, "")
	_, err2 := c.Cancel(ctx, "")
	_, err3 := c.Variable(ctx, "")
	err4 := c.DeleteConnection(ctx, "")
	err5 := c.Logs(ctx, "", 0, false, func(client.LogLine) error { return nil })
	_, err6 := c.SendEvent(ctx, "", nil)
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("call %d: error %v, want ErrBadRequest", i+1, err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests sent, want 0", n)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts client.ListOpts
		want string
	}{
		{"zero", client.ListOpts{}, ""},
		{"all", client.ListOpts{States: []activity.State{activity.StateQueued, activity.StateRunning}, Queue: "gpu", DagID: "etl", Limit: 5},
			"dag_id=etl&limit=5&queue=gpu&state=queued%2Crunning"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var gotQuery string
			c := serve(t, "", map[string]http.HandlerFunc{
				"GET /api/v1/task-instances": func(w http.ResponseWriter, r *http.Request) {
					gotQuery = r.URL.RawQuery
					writeJSON(w, 200, map[string]any{
						"task_instances": []activity.TaskInstance{{ID: "b", State: activity.StateRunning}, {ID: "a", State: activity.StateQueued}},
						"total":          7,
					})
				},
			})
			tis, total, err := c.List(testContext(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if gotQuery != tc.want {
				t.Errorf("query %q, want %q", gotQuery, tc.want)
			}
			if total != 7 || len(tis) != 2 || tis[0].ID != "b" || tis[1].ID != "a" {
				t.Errorf("List = %v, %d", tis, total)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	c := serve(t, "", map[string]http.HandlerFunc{
		"POST /api/v1/task-instances/{id}/cancel": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") == "done" {
				writeError(w, 409, "conflict", "illegal state transition success → cancelled")
				return
			}
			writeJSON(w, 200, activity.TaskInstance{ID: r.PathValue("id"), State: activity.StateCancelled})
		},
	})
	ctx := testContext(t)
	ti, err := c.Cancel(ctx, "run/ning")
	if err != nil || ti.ID != "run/ning" || ti.State != activity.StateCancelled {
		t.Errorf("Cancel = %+v, %v", ti, err)
	}
	if _, err := c.Cancel(ctx, "done"); !errors.Is(err, client.ErrConflict) {
		t.Errorf("Cancel of a finished task: %v, want ErrConflict", err)
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	c := serve(t, "tok", map[string]http.HandlerFunc{
		"POST /api/v1/task-instances/{id}/retry": func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Header.Get("Authorization") != "Bearer tok":
				writeError(w, 401, "unauthorized", "the public API needs the operator token")
			case r.PathValue("id") == "ok":
				writeError(w, 409, "conflict", "task instance is success: only a failed task can be retried")
			case r.PathValue("id") == "gone":
				writeError(w, 404, "not_found", "task instance gone: not found")
			default:
				writeJSON(w, 202, activity.TaskInstance{ID: r.PathValue("id"), State: activity.StateQueued, TryNumber: 2})
			}
		},
	})
	ctx := testContext(t)
	ti, err := c.Retry(ctx, "fa/iled")
	if err != nil || ti.ID != "fa/iled" || ti.State != activity.StateQueued || ti.TryNumber != 2 {
		t.Errorf("Retry = %+v, %v", ti, err)
	}
	if _, err := c.Retry(ctx, "ok"); !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), "only a failed task") {
		t.Errorf("Retry of a succeeded task: %v, want ErrConflict with the reason", err)
	}
	if _, err := c.Retry(ctx, "gone"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Retry of an unknown task: %v, want ErrNotFound", err)
	}
	if _, err := c.Retry(ctx, ""); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("Retry of an empty id: %v, want ErrBadRequest", err)
	}
}

// sequence answers GET task-instances/{id} with one canned answer per call,
// repeating the last.
type sequence struct {
	mu      sync.Mutex
	answers []func(http.ResponseWriter)
	calls   int
}

func (s *sequence) handle(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	i := min(s.calls, len(s.answers)-1)
	s.calls++
	s.mu.Unlock()
	s.answers[i](w)
}

func state(st activity.State, try int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		writeJSON(w, 200, activity.TaskInstance{ID: "t", State: st, TryNumber: try, MaxTries: 2})
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	seq := &sequence{answers: []func(http.ResponseWriter){
		state(activity.StateQueued, 1),
		state(activity.StateQueued, 1),
		state(activity.StateRunning, 1),
		func(w http.ResponseWriter) { writeError(w, 503, "unavailable", "restarting") }, // ridden out
		state(activity.StateUpForRetry, 1),
		state(activity.StateQueued, 2),
		state(activity.StateRunning, 2),
		state(activity.StateRunning, 2),
		state(activity.StateSuccess, 2),
	}}
	c := serve(t, "", map[string]http.HandlerFunc{"GET /api/v1/task-instances/{id}": seq.handle})
	var got []string
	ti, err := c.Wait(testContext(t), "t", func(ti *activity.TaskInstance) {
		got = append(got, fmt.Sprintf("%s/%d", ti.State, ti.TryNumber))
	})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if ti.State != activity.StateSuccess {
		t.Errorf("Wait = %s, want success", ti.State)
	}
	want := []string{"queued/1", "running/1", "up_for_retry/1", "queued/2", "running/2", "success/2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}

func TestWaitEnds(t *testing.T) {
	t.Parallel()
	t.Run("not_found", func(t *testing.T) {
		t.Parallel()
		seq := &sequence{answers: []func(http.ResponseWriter){
			func(w http.ResponseWriter) { writeError(w, 404, "not_found", "no such task instance") },
		}}
		c := serve(t, "", map[string]http.HandlerFunc{"GET /api/v1/task-instances/{id}": seq.handle})
		if _, err := c.Wait(testContext(t), "t", nil); !errors.Is(err, client.ErrNotFound) {
			t.Errorf("Wait: %v, want ErrNotFound", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		seq := &sequence{answers: []func(http.ResponseWriter){state(activity.StateRunning, 1)}}
		c := serve(t, "", map[string]http.HandlerFunc{"GET /api/v1/task-instances/{id}": seq.handle})
		ctx, cancel := context.WithCancel(testContext(t))
		_, err := c.Wait(ctx, "t", func(*activity.TaskInstance) { cancel() })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Wait: %v, want context.Canceled", err)
		}
	})
}

func TestUnauthorized(t *testing.T) {
	t.Parallel()
	routes := map[string]http.HandlerFunc{
		"GET /api/v1/variables": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer right" {
				writeError(w, 401, "unauthorized", "the public API needs the operator token")
				return
			}
			writeJSON(w, 200, map[string]any{"variables": []activity.Variable{{Key: "k", Value: "v"}}})
		},
	}
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"", false}, {"wrong", false}, {"right", true}} {
		c := serve(t, tc.token, routes)
		vs, err := c.Variables(testContext(t))
		if tc.ok && (err != nil || len(vs) != 1) {
			t.Errorf("token %q: %v, %v", tc.token, vs, err)
		}
		if !tc.ok && !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("token %q: %v, want ErrUnauthorized", tc.token, err)
		}
	}
}
