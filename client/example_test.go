package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/client"
)

// fakeExecutor answers like an executor whose task instance succeeds on
// the third read.
func fakeExecutor() *httptest.Server {
	var reads atomic.Int32
	ti := activity.TaskInstance{ID: "0193", DagID: "adhoc", TaskID: "echo", Queue: "default", State: activity.StateQueued, TryNumber: 1, MaxTries: 1}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/activities", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(ti)
	})
	mux.HandleFunc("GET /api/v1/task-instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != ti.ID {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","detail":"task instance ` + r.PathValue("id") + `: not found"}`))
			return
		}
		t := ti
		switch reads.Add(1) {
		case 1:
		case 2:
			t.State, t.Hostname = activity.StateRunning, "worker-1"
		default:
			t.State = activity.StateSuccess
		}
		_ = json.NewEncoder(w).Encode(t)
	})
	return httptest.NewServer(mux)
}

func Example() {
	srv := fakeExecutor()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.New(client.Config{URL: srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	ti, err := c.Submit(ctx, activity.TaskSpec{
		Queue:      "default",
		Entrypoint: activity.Entrypoint{Command: []string{"echo", "hello"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("queued", ti.ID)
	ti, err = c.Wait(ctx, ti.ID, func(ti *activity.TaskInstance) {
		fmt.Println("state", ti.State)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("final", ti.State)

	_, err = c.Get(ctx, "nope")
	var ae *client.APIError
	fmt.Println(errors.Is(err, client.ErrNotFound), errors.As(err, &ae) && ae.Status == http.StatusNotFound)
	// Output:
	// queued 0193
	// state queued
	// state running
	// state success
	// final success
	// true true
}
