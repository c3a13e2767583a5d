package triggerer

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/trigger"
)

// fakeRuntime speaks the Python trigger runtime's JSON lines with the
// standard library only (it stands in for the runtime process, not for
// Airflow): it echoes kwargs["v"] as the event, and exits once before
// answering a trigger whose kwargs["die_once"] file does not exist yet.
const fakeRuntime = `
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["op"] != "start":
        continue
    kw = m.get("kwargs") or {}
    flag = kw.get("die_once")
    if flag and not os.path.exists(flag):
        open(flag, "w").close()
        sys.exit(3)
    print(json.dumps({"id": m["id"], "event": {"echo": kw.get("v"), "classpath": m["classpath"]}}), flush=True)
`

func TestPythonRuntimeRunsAndRestarts(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required:", err)
	}
	p := newPyRuntime([]string{py, "-c", fakeRuntime}, nil, nil, slog.Default())
	defer p.close(context.Background())
	events := make(chan trigger.Event, 4)
	start := func(id string, kw map[string]any) {
		t.Helper()
		_, err := p.Start(activity.Trigger{ID: id, Kind: trigger.KindAirflow,
			Kwargs: map[string]any{"classpath": "dags.T", "kwargs": kw}}, func(ev trigger.Event) { events <- ev })
		if err != nil {
			t.Fatal(err)
		}
	}
	next := func() trigger.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(30 * time.Second):
			t.Fatal("no event")
		}
		return trigger.Event{}
	}
	start("a", map[string]any{"v": 1})
	if ev := next(); !reflect.DeepEqual(ev.Payload, map[string]any{"echo": float64(1), "classpath": "dags.T"}) {
		t.Errorf("event %+v", ev)
	}
	// The runtime dies on this one; it is started again and given it again.
	start("b", map[string]any{"v": "x", "die_once": filepath.Join(t.TempDir(), "died")})
	if ev := next(); ev.Err != "" || ev.Payload.(map[string]any)["echo"] != "x" {
		t.Errorf("event after the restart %+v", ev)
	}
	select {
	case ev := <-events:
		t.Errorf("a second event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
	// A stopped trigger fires nothing.
	stop, err := p.Start(activity.Trigger{ID: "c", Kwargs: map[string]any{"classpath": "dags.T", "kwargs": map[string]any{"die_once": "/"}}},
		func(ev trigger.Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	p.close(context.Background())
	if _, err := p.Start(activity.Trigger{ID: "d"}, func(trigger.Event) {}); err == nil {
		t.Error("Start after close succeeded")
	}
}
