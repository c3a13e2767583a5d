package client_test

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/taskwire/taskwire/client"
)

func TestLogs(t *testing.T) {
	t.Parallel()
	var gotQuery string
	c := serve(t, "", map[string]http.HandlerFunc{
		"GET /api/v1/task-instances/{id}/logs": func(w http.ResponseWriter, r *http.Request) {
			gotQuery = r.URL.RawQuery
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"try":1,"timestamp":"2026-11-22T10:00:00.5Z","level":"info","event":"hello","logger":"task","n":3}`)
			fmt.Fprintln(w, ``)
			fmt.Fprintln(w, `{"try":2,"timestamp":1795000000.25,"level":"error","event":"boom","logger":"task.stderr"}`)
			fmt.Fprintln(w, `not json`)
		},
	})
	var got []client.LogLine
	err := c.Logs(testContext(t), "ti-1", 0, false, func(l client.LogLine) error {
		got = append(got, l)
		return nil
	})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if gotQuery != "" {
		t.Errorf("query %q, want none", gotQuery)
	}
	want := []client.LogLine{
		{Try: 1, Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 5e8, time.UTC), Level: "info", Event: "hello", Logger: "task",
			Raw: []byte(`{"try":1,"timestamp":"2026-11-22T10:00:00.5Z","level":"info","event":"hello","logger":"task","n":3}`)},
		{Try: 2, Timestamp: time.Unix(1795000000, 25e7).UTC(), Level: "error", Event: "boom", Logger: "task.stderr",
			Raw: []byte(`{"try":2,"timestamp":1795000000.25,"level":"error","event":"boom","logger":"task.stderr"}`)},
		{Event: "not json", Raw: []byte(`{"event":"not json"}`)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !got[i].Timestamp.Equal(want[i].Timestamp) {
			t.Errorf("line %d timestamp %v, want %v", i, got[i].Timestamp, want[i].Timestamp)
		}
		got[i].Timestamp, want[i].Timestamp = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("line %d = %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// TestLogsFollowStreams checks lines reach fn while the response is still
// open: the server writes its second line only after fn saw the first.
func TestLogsFollowStreams(t *testing.T) {
	t.Parallel()
	seen := make(chan struct{})
	var gotQuery string
	c := serve(t, "", map[string]http.HandlerFunc{
		"GET /api/v1/task-instances/{id}/logs": func(w http.ResponseWriter, r *http.Request) {
			gotQuery = r.URL.RawQuery
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"try":3,"event":"first"}`)
			w.(http.Flusher).Flush()
			select {
			case <-seen:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintln(w, `{"try":3,"event":"second"}`)
		},
	})
	var events []string
	err := c.Logs(testContext(t), "ti-1", 3, true, func(l client.LogLine) error {
		events = append(events, l.Event)
		if l.Event == "first" {
			close(seen)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if !reflect.DeepEqual(events, []string{"first", "second"}) {
		t.Errorf("events %v", events)
	}
	if gotQuery != "follow=true&try=3" {
		t.Errorf("query %q", gotQuery)
	}
}

func TestLogsStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	c := serve(t, "", map[string]http.HandlerFunc{
		"GET /api/v1/task-instances/{id}/logs": func(w http.ResponseWriter, r *http.Request) {
			for i := range 1000 {
				if _, err := fmt.Fprintf(w, "{\"event\":\"line %d\"}\n", i); err != nil {
					return
				}
			}
		},
	})
	errEnough := errors.New("enough")
	n := 0
	err := c.Logs(testContext(t), "ti-1", 0, true, func(client.LogLine) error {
		n++
		if n == 2 {
			return errEnough
		}
		return nil
	})
	if err != errEnough {
		t.Errorf("Logs: %v, want fn's error as is", err)
	}
	if n != 2 {
		t.Errorf("fn called %d times, want 2", n)
	}
}

func TestLogsNotFound(t *testing.T) {
	t.Parallel()
	c := serve(t, "", map[string]http.HandlerFunc{
		"GET /api/v1/task-instances/{id}/logs": func(w http.ResponseWriter, r *http.Request) {
			writeError(w, 404, "not_found", "task instance nope")
		},
	})
	err := c.Logs(testContext(t), "nope", 0, false, func(client.LogLine) error { return nil })
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Logs: %v, want ErrNotFound", err)
	}
}
