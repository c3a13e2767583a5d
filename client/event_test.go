package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

// eventSink plays the executor's POST /api/v1/events/{name}: it records
// each request and answers 202 with the stored event.
type eventSink struct {
	mu   sync.Mutex
	got  []sentRequest
	sent time.Time
}

type sentRequest struct {
	name, contentType, body string
}

func (s *eventSink) handle(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer op" {
		writeError(w, 401, "unauthorized", "the public API needs the operator token")
		return
	}
	data, _ := io.ReadAll(r.Body)
	name := r.PathValue("name")
	s.mu.Lock()
	s.got = append(s.got, sentRequest{name, r.Header.Get("Content-Type"), string(data)})
	s.mu.Unlock()
	if err := activity.ValidateEventName(name); err != nil {
		writeError(w, 400, "bad_request", err.Error())
		return
	}
	ev := activity.ExternalEvent{Name: name, SentAt: s.sent}
	if strings.TrimSpace(string(data)) != "" {
		if err := json.Unmarshal(data, &ev.Payload); err != nil {
			writeError(w, 400, "bad_request", "body: the event payload must be JSON")
			return
		}
	}
	writeJSON(w, 202, ev)
}

func TestSendEvent(t *testing.T) {
	t.Parallel()
	sent := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		event       string
		payload     any
		wantBody    string
		wantCT      string
		wantPayload any
	}{
		{"object", "orders.ready", map[string]any{"day": "2026-11-22", "n": 3},
			`{"day":"2026-11-22","n":3}`, "application/json", map[string]any{"day": "2026-11-22", "n": 3.0}},
		{"raw_json", "ns:build-42", json.RawMessage(`[1, "two"]`), `[1,"two"]`, "application/json", []any{1.0, "two"}},
		{"string", "go", "now", `"now"`, "application/json", "now"},
		{"no_payload", "go", nil, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &eventSink{sent: sent}
			c := serve(t, "op", map[string]http.HandlerFunc{"POST /api/v1/events/{name}": s.handle})
			ev, err := c.SendEvent(testContext(t), tc.event, tc.payload)
			if err != nil {
				t.Fatalf("SendEvent: %v", err)
			}
			want := activity.ExternalEvent{Name: tc.event, Payload: tc.wantPayload, SentAt: sent}
			if !reflect.DeepEqual(*ev, want) {
				t.Errorf("SendEvent = %+v, want %+v", *ev, want)
			}
			wantReq := []sentRequest{{tc.event, tc.wantCT, tc.wantBody}}
			if !reflect.DeepEqual(s.got, wantReq) {
				t.Errorf("server got %+v, want %+v", s.got, wantReq)
			}
		})
	}
}

func TestSendEventRefused(t *testing.T) {
	t.Parallel()
	s := &eventSink{}
	c := serve(t, "op", map[string]http.HandlerFunc{"POST /api/v1/events/{name}": s.handle})
	_, err := c.SendEvent(testContext(t), "bad name/x", map[string]any{"a": 1})
	if !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("SendEvent: %v, want ErrBadRequest", err)
	}
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Detail, `event name "bad name/x"`) {
		t.Errorf("error %v, want a 400 naming the event", err)
	}
	if !strings.Contains(err.Error(), "send event bad name/x") {
		t.Errorf("error %q does not name the operation", err)
	}
	if len(s.got) != 1 || s.got[0].name != "bad name/x" {
		t.Errorf("server got %+v, want the name as one path segment", s.got)
	}
}
