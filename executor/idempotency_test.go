package executor

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/queue"
)

func (f *fixture) postSubmit(key, body string) (int, activity.TaskInstance, string) {
	f.t.Helper()
	req, _ := http.NewRequestWithContext(f.t.Context(), http.MethodPost, f.srv.URL+"/api/v1/activities", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ti activity.TaskInstance
	_ = json.NewDecoder(bytes.NewReader(b)).Decode(&ti)
	return resp.StatusCode, ti, string(b)
}

// The same Idempotency-Key returns the same task instance (200), even when
// sent concurrently; with another spec it is 409 with a message; without
// a key every submit queues a new instance.
func TestSubmitIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	spec := `{"queue":"q","command":["echo","hi"]}`
	st, first, body := f.postSubmit("k-1", spec)
	if st != http.StatusCreated || first.ID == "" || first.IdempotencyKey != "k-1" {
		t.Fatalf("first submit: %d %s", st, body)
	}
	st, again, body := f.postSubmit("k-1", spec)
	if st != http.StatusOK || again.ID != first.ID {
		t.Fatalf("repeat: %d %s, want 200 and %s", st, body, first.ID)
	}
	st, _, body = f.postSubmit("k-1", `{"queue":"q","command":["echo","other"]}`)
	if st != http.StatusConflict || !strings.Contains(body, "different task spec") || !strings.Contains(body, first.ID) {
		t.Fatalf("same key, other spec: %d %s", st, body)
	}
	// Concurrent repeats of a new key: one task instance.
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids = map[string]int{}
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, ti, body := f.postSubmit("k-2", spec)
			if st != http.StatusOK && st != http.StatusCreated {
				t.Errorf("concurrent submit: %d %s", st, body)
				return
			}
			mu.Lock()
			ids[ti.ID]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Errorf("concurrent submits with one key made %d task instances: %v", len(ids), ids)
	}
	// One activity per key.
	n := 0
	for f.tryTake("q", 300e6) != nil {
		n++
	}
	if n != 2 {
		t.Errorf("%d activities published for 2 keys", n)
	}
	_, a, _ := f.postSubmit("", spec)
	_, b, _ := f.postSubmit("", spec)
	if a.ID == b.ID {
		t.Error("submits without a key share a task instance")
	}
	if st, _, body := f.postSubmit(strings.Repeat("x", 256), spec); st != http.StatusBadRequest || !strings.Contains(body, "Idempotency-Key") {
		t.Errorf("over-long key: %d %s", st, body)
	}
	// Present but empty (schemathesis found it accepted as "no key").
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.srv.URL+"/api/v1/activities", strings.NewReader(spec))
	req.Header["Idempotency-Key"] = []string{""}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "Idempotency-Key") {
		t.Errorf("empty key: %d %s", resp.StatusCode, msg)
	}
}
