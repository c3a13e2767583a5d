package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

// writeCounts is the last sequence of every stream the executor writes
// (buckets included): equal counts mean nothing was written.
func (f *fixture) writeCounts(ctx context.Context) map[string]uint64 {
	f.t.Helper()
	streams, err := queuetest.Streams(ctx, f.q.Conn())
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]uint64{}
	for name, info := range streams {
		out[name] = info.State.LastSeq
	}
	return out
}

// Every route of the public and the Execution API answers missing or wrong
// auth, bad JSON, unknown fields, a body that is no object, an empty and an
// oversized body with a 4xx and a message saying what is wrong, and writes
// nothing to NATS.
func TestEveryRouteRefusesBadInput(t *testing.T) {
	t.Parallel()
	const maxBody = 16 << 10
	f := newFixture(t, queue.Config{}, Config{OperatorToken: "op-secret", MaxBody: maxBody})
	ctx := t.Context()
	spec := activity.TaskSpec{Queue: "q", DagID: "dag", RunID: "run", TaskID: "t", Entrypoint: activity.Entrypoint{Command: []string{"x"}}}
	queued := f.submit(spec)
	actQueued, m := f.take("q")
	_ = m.Ack()
	spec.TaskID = "t2"
	running := f.submit(spec)
	actRunning, m := f.take("q")
	_ = m.Ack()
	req := runReq
	req.ActivityID = actRunning.ID
	rr, err := f.ec.Run(ctx, actRunning.Token, running.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{"operator": "op-secret", "workload": actQueued.Token, "execution": rr.Token}
	xcom := "/dag/run/t2/k"

	type route struct {
		method, path, auth string
		body               string // a valid body ("" for routes without one)
		strict             bool   // unknown fields are refused
	}
	routes := []route{
		{"POST", "/api/v1/activities", "operator", `{"queue":"q","command":["x"]}`, true},
		{"GET", "/api/v1/task-instances", "operator", "", false},
		{"GET", "/api/v1/task-instances/" + queued.ID, "operator", "", false},
		{"POST", "/api/v1/task-instances/" + queued.ID + "/cancel", "operator", "", false},
		{"GET", "/api/v1/task-instances/" + queued.ID + "/logs", "operator", "", false},
		{"GET", "/api/v1/variables", "operator", "", false},
		{"GET", "/api/v1/variables/v", "operator", "", false},
		{"PUT", "/api/v1/variables/v", "operator", `{"value":"x"}`, true},
		{"DELETE", "/api/v1/variables/v", "operator", "", false},
		{"GET", "/api/v1/connections", "operator", "", false},
		{"GET", "/api/v1/connections/c", "operator", "", false},
		{"PUT", "/api/v1/connections/c", "operator", `{"conn_type":"http"}`, true},
		{"DELETE", "/api/v1/connections/c", "operator", "", false},
		{"POST", "/api/v1/events/e", "operator", `{"any":"json"}`, false},
		{"GET", "/api/v1/xcoms" + xcom, "operator", "", false},
		{"PATCH", "/execution/task-instances/" + queued.ID + "/run", "workload", `{"hostname":"h","pid":1,"worker_id":"w"}`, true},
		{"PATCH", "/execution/task-instances/" + running.ID + "/state", "execution", `{"state":"success"}`, true},
		{"PUT", "/execution/task-instances/" + running.ID + "/heartbeat", "execution", `{"hostname":"h","pid":7,"worker_id":"w"}`, true},
		{"GET", "/execution/connections/c", "execution", "", false},
		{"GET", "/execution/variables/v", "execution", "", false},
		{"PUT", "/execution/variables/v", "execution", `{"value":"x"}`, true},
		{"DELETE", "/execution/variables/v", "execution", "", false},
		{"GET", "/execution/xcoms" + xcom, "execution", "", false},
		{"POST", "/execution/xcoms" + xcom, "execution", `{"value":1}`, true},
		{"DELETE", "/execution/xcoms" + xcom, "execution", "", false},
	}
	do := func(method, path, token string, body []byte) (int, execution.ErrorBody, string) {
		r, err := http.NewRequestWithContext(ctx, method, f.srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var eb execution.ErrorBody
		_ = json.Unmarshal(raw, &eb)
		return resp.StatusCode, eb, string(raw)
	}
	before := f.writeCounts(ctx)
	oversized := []byte(`{"value":"` + strings.Repeat("x", maxBody) + `"}`)
	cases := 0
	for _, rt := range routes {
		type bad struct {
			name, token string
			body        []byte
			status      int
			detail      string // in the error's detail
		}
		bads := []bad{
			{"no_auth", "", []byte(rt.body), 401, "token"},
			{"garbage_token", "not.a.jwt", []byte(rt.body), 401, ""},
		}
		// A token of the wrong kind: the operator's on the Execution API,
		// a task's on the public API, a workload token past …/run.
		switch rt.auth {
		case "operator":
			bads = append(bads, bad{"execution_token", tokens["execution"], []byte(rt.body), 401, "operator token"})
		case "execution":
			bads = append(bads, bad{"operator_token", tokens["operator"], []byte(rt.body), 401, ""},
				bad{"workload_token", tokens["workload"], []byte(rt.body), 401, ""})
		case "workload":
			bads = append(bads, bad{"execution_token", tokens["execution"], []byte(rt.body), 401, ""})
		}
		if rt.body != "" {
			tok := tokens[rt.auth]
			bads = append(bads,
				bad{"bad_json", tok, []byte(`{"value":`), 400, "body"},
				bad{"oversized", tok, oversized, 413, "too large"},
			)
			if rt.strict {
				unknown := strings.Replace(rt.body, "{", `{"colour":"blue",`, 1)
				bads = append(bads,
					bad{"unknown_field", tok, []byte(unknown), 400, `unknown field "colour"`},
					bad{"not_an_object", tok, []byte(`["x"]`), 400, "body"},
					bad{"empty", tok, nil, 400, "empty body"},
					bad{"trailing_data", tok, []byte(rt.body + `{}`), 400, "trailing data"},
				)
			}
		}
		for _, b := range bads {
			t.Run(fmt.Sprintf("%s_%s_%s", rt.method, strings.ReplaceAll(strings.Trim(rt.path, "/"), "/", "_"), b.name), func(t *testing.T) {
				cases++
				status, eb, raw := do(rt.method, rt.path, b.token, b.body)
				if status != b.status {
					t.Errorf("status %d (%s), want %d", status, raw, b.status)
				}
				if eb.Error == "" || eb.Detail == "" || !strings.Contains(eb.Detail, b.detail) {
					t.Errorf("answer %s: want an error whose detail says %q", raw, b.detail)
				}
				// A 413 names its limit as a number too (the SDKs show it).
				wantLimit := int64(0)
				if b.status == 413 {
					wantLimit = maxBody
				}
				if eb.Limit != wantLimit {
					t.Errorf("answer %s: limit %d, want %d", raw, eb.Limit, wantLimit)
				}
			})
		}
	}
	if after := f.writeCounts(ctx); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("bad requests wrote to NATS:\nbefore %v\nafter  %v", before, after)
	}
	for _, id := range []string{queued.ID, running.ID} {
		got, err := f.ex.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]activity.State{queued.ID: activity.StateQueued, running.ID: activity.StateRunning}[id]; got.State != want {
			t.Errorf("%s is %s after the bad requests, want %s", id, got.State, want)
		}
	}
	// The check above sees writes: a good request makes one.
	if status, _, raw := do("PUT", "/api/v1/variables/v", "op-secret", []byte(`{"value":"x"}`)); status != 200 {
		t.Fatalf("good variable PUT: %d %s", status, raw)
	}
	if after := f.writeCounts(ctx); fmt.Sprint(after) == fmt.Sprint(before) {
		t.Error("a good PUT wrote nothing that writeCounts sees")
	}
	t.Logf("%d routes, %d bad requests, nothing written", len(routes), cases)
}
