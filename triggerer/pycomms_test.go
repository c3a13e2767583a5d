package triggerer

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/trigger"
)

// commsRuntime stands in for the Python trigger runtime's process (the
// standard library only, not Airflow): at a start it asks for a held rate
// limit token of its rate_key, masks a secret and writes it to stderr,
// asks for a variable (this runtime has no Execution API), gives the
// token back and fires with what it was answered.
const commsRuntime = `
import json, sys
def ask(m):
    print(json.dumps(m), flush=True)
    while True:
        r = json.loads(sys.stdin.readline())
        if r.get("op") == "reply" and r.get("req") == m["req"]:
            return r
for line in sys.stdin:
    m = json.loads(line)
    if m["op"] != "start":
        continue
    tid = m["id"]
    got = ask({"op": "acquire", "req": 1, "id": tid, "key": m.get("rate_key"), "hold": True})
    ask({"op": "comms", "req": 2, "id": tid, "msg": {"type": "MaskSecret", "value": "hunter2-secret", "name": None}})
    print("the trigger leaks hunter2-secret", file=sys.stderr, flush=True)
    var = ask({"op": "comms", "req": 3, "id": tid, "msg": {"type": "GetVariable", "key": "k"}})
    bad = ask({"op": "acquire", "req": 4, "id": tid, "key": "no spaces", "hold": False})
    print(json.dumps({"op": "release", "req": 1}), flush=True)
    print(json.dumps({"id": tid, "event": {"granted": "error" not in got, "var": var.get("error"), "bad": bad.get("error")}}), flush=True)
`

// countingLimiter counts tokens taken and given back.
type countingLimiter struct {
	mu       sync.Mutex
	keys     []string
	released atomic.Int32
}

func (l *countingLimiter) Acquire(_ context.Context, key string) (func(), error) {
	l.mu.Lock()
	l.keys = append(l.keys, key)
	l.mu.Unlock()
	return func() { l.released.Add(1) }, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The requests of a Python-runtime trigger: a held rate limit token of
// its rate_key, given back at release; MaskSecret masks the runtime's
// stderr in the triggerer's log; a read without an Execution API is
// Airflow's API_SERVER_ERROR; a bad rate key an error.
func TestPythonRuntimeRequests(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required:", err)
	}
	var logs syncBuffer
	lim := &countingLimiter{}
	p := newPyRuntime([]string{py, "-c", commsRuntime}, lim, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	defer p.close(context.Background())
	events := make(chan trigger.Event, 1)
	if _, err := p.Start(activity.Trigger{ID: "a", Kind: trigger.KindAirflow, Kwargs: map[string]any{
		"classpath": "dags.T", "kwargs": map[string]any{}, "rate_key": "api.example.com"}}, func(ev trigger.Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	var ev trigger.Event
	select {
	case ev = <-events:
	case <-time.After(30 * time.Second):
		t.Fatalf("no event; log:\n%s", logs.String())
	}
	pl, _ := ev.Payload.(map[string]any)
	if pl["granted"] != true {
		t.Errorf("acquire not granted: %v", ev)
	}
	if v, _ := pl["var"].(map[string]any); v["error"] != errAPIServer || !strings.Contains(v["detail"].(map[string]any)["message"].(string), "--api-url") {
		t.Errorf("variable without an Execution API: %v", pl["var"])
	}
	if b, _ := pl["bad"].(map[string]any); b == nil || b["error"] != errGeneric {
		t.Errorf("a bad rate key: %v", pl["bad"])
	}
	lim.mu.Lock()
	keys := lim.keys
	lim.mu.Unlock()
	if len(keys) != 1 || keys[0] != "api.example.com" {
		t.Errorf("tokens taken for %v, want one of api.example.com", keys)
	}
	deadline := time.Now().Add(10 * time.Second)
	for lim.released.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := lim.released.Load(); n != 1 {
		t.Errorf("%d leases given back, want 1", n)
	}
	p.close(context.Background())
	if out := logs.String(); strings.Contains(out, "hunter2-secret") || !strings.Contains(out, "the trigger leaks ***") {
		t.Errorf("the runtime's stderr not masked:\n%s", out)
	}
}
