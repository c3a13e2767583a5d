package worker

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/protocol"
)

func TestResumeWithFailStartsNoProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *Config) {
		c.Queues = []string{"default", "sdk"}
		c.Runtimes = map[string]Runtime{"sdk": sdkRuntime(t, protocol.CodecJSON, nil)}
	})
	marker := filepath.Join(t.TempDir(), "ran")
	// From the activity, with the trigger's error.
	h.execute("ti-fail-cmd", "default", activity.Entrypoint{Command: []string{"touch", marker}}, fakeTI{},
		func(et *activity.ExecuteTask) {
			et.NextMethod = failMethod
			et.NextKwargs = map[string]any{"error": "trigger timeout after 2s"}
		})
	// From the run response, with no error: the SDK runtime is not started
	// either (its "noop" task would succeed).
	h.execute("ti-fail-sdk", "sdk", activity.Entrypoint{Task: "noop"},
		fakeTI{nextMethod: failMethod, nextKwargs: map[string]any{"error": 42}}, nil)

	got := h.waitState("ti-fail-cmd")
	if got.State != activity.StateUpForRetry || got.Reason != "trigger timeout after 2s" || got.Trigger != nil {
		t.Errorf("state %+v, want up_for_retry (trigger timeout after 2s)", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
	h.waitLog("ti-fail-cmd", "worker log line", event("worker", "resumed after its trigger failed: trigger timeout after 2s"))

	got = h.waitState("ti-fail-sdk")
	if got.State != activity.StateUpForRetry || got.Reason != triggerFailedDefault {
		t.Errorf("state %+v, want up_for_retry (%s)", got, triggerFailedDefault)
	}
	if h.findLog("ti-fail-sdk", event("testruntime", "")) {
		t.Errorf("the runtime ran: %v", h.logsOf("ti-fail-sdk"))
	}
	for _, id := range []string{"ti-fail-cmd", "ti-fail-sdk"} {
		if n := len(h.api.statesOf(id)); n != 1 {
			t.Errorf("%s: %d state reports, want 1", id, n)
		}
	}
}

func TestCommandDefersThroughFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	seen := filepath.Join(t.TempDir(), "seen")
	script := `test -n "$TASKWIRE_DEFER_FILE" || exit 10
test ! -e "$TASKWIRE_DEFER_FILE" || exit 11
test -d "$(dirname "$TASKWIRE_DEFER_FILE")" || exit 12
echo "$TASKWIRE_DEFER_FILE" > "$0"
cat > "$TASKWIRE_DEFER_FILE" <<'EOF'
{"trigger": "timedelta", "kwargs": {"delta": 30, "unit": "s"},
 "next_method": "resume", "next_kwargs": {"round": 1, "at": "now"}, "timeout": "90s"}
EOF`
	h.execute("ti-defer-file", "default", activity.Entrypoint{Command: []string{"sh", "-c", script, seen}}, fakeTI{}, nil)
	got := h.waitState("ti-defer-file")
	wantState(t, got, activity.StateDeferred, "")
	tr := got.Trigger
	if tr == nil || tr.ID == "" || tr.Classpath != "timedelta" || tr.Timeout.D() != 90*time.Second {
		t.Fatalf("trigger %+v", tr)
	}
	if tr.Kwargs["delta"] != float64(30) || tr.Kwargs["unit"] != "s" {
		t.Errorf("kwargs %#v", tr.Kwargs)
	}
	if got.NextMethod != "resume" || !reflect.DeepEqual(got.NextKwargs, map[string]any{"round": float64(1), "at": "now"}) {
		t.Errorf("next %q %#v", got.NextMethod, got.NextKwargs)
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	file := strings.TrimSpace(string(b))
	if dir, base := filepath.Dir(file), filepath.Base(file); !strings.Contains(dir, "taskwire-defer-") || !strings.HasPrefix(base, "ti-defer-file.1.") {
		t.Errorf("defer file %s, want one named for the try in the worker's defer directory", file)
	} else if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("defer file %s left behind (%v)", file, err)
	}
	h.waitLog("ti-defer-file", "deferral log line", event("worker", "deferred on trigger timedelta; will resume at resume"))

	// A command that writes no file succeeds, one that exits non-zero
	// fails whatever its file says.
	h.execute("ti-defer-none", "default", activity.Entrypoint{Command: []string{"true"}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-defer-none"), activity.StateSuccess, "")
	h.execute("ti-defer-exit", "default", activity.Entrypoint{Command: []string{"sh", "-c",
		`echo '{"trigger":"timedelta","next_method":"resume"}' > "$TASKWIRE_DEFER_FILE"; exit 3`}}, fakeTI{}, nil)
	wantState(t, h.waitState("ti-defer-exit"), activity.StateUpForRetry, "exit code 3")
	h.waitLog("ti-defer-exit", "ignored file line", event("worker", "ignoring the defer file"))
}

func TestBadDeferFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	cases := []struct{ name, content, want string }{
		{"not_json", `trigger=timedelta`, "not valid JSON"},
		{"empty", ``, "empty"},
		{"array", `["timedelta"]`, "a JSON array, want an object"},
		{"null", `null`, "null"},
		{"unknown_field", `{"trigger":"timedelta","next_method":"resume","classpath":"x"}`, `unknown field "classpath"`},
		{"no_trigger", `{"next_method":"resume"}`, `"trigger" is missing`},
		{"no_next_method", `{"trigger":"timedelta"}`, `"next_method" is missing`},
		{"bad_timeout", `{"trigger":"timedelta","next_method":"resume","timeout":"soon"}`, `timeout "soon"`},
		{"negative_timeout", `{"trigger":"timedelta","next_method":"resume","timeout":"-1s"}`, `timeout "-1s"`},
		{"trailing", `{"trigger":"timedelta","next_method":"resume"} {}`, "trailing data"},
		{"reserved_method", `{"trigger":"timedelta","next_method":"__fail__"}`, "reserved"},
		{"kwargs_not_object", `{"trigger":"timedelta","next_method":"resume","kwargs":[1]}`, `"kwargs" is a JSON array, want an object`},
		{"trigger_not_string", `{"trigger":1,"next_method":"resume"}`, `"trigger" is a JSON number, want a string`},
	}
	for _, c := range cases {
		h.execute("ti-bad-"+c.name, "default", activity.Entrypoint{Command: []string{"sh", "-c",
			`printf '%s' "$0" > "$TASKWIRE_DEFER_FILE"`, c.content}}, fakeTI{}, nil)
	}
	// The worker reads the file it named, not one a symlink points to.
	h.execute("ti-bad-symlink", "default", activity.Entrypoint{Command: []string{"sh", "-c",
		`echo '{"trigger":"timedelta","next_method":"resume"}' > "$0"; ln -s "$0" "$TASKWIRE_DEFER_FILE"`,
		filepath.Join(t.TempDir(), "elsewhere.json")}}, fakeTI{}, nil)
	cases = append(cases, struct{ name, content, want string }{"symlink", "", "not a regular file"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := h.waitState("ti-bad-" + c.name)
			wantState(t, got, activity.StateFailed, "bad defer file (TASKWIRE_DEFER_FILE): ")
			if !strings.Contains(got.Reason, c.want) {
				t.Errorf("reason %q lacks %q", got.Reason, c.want)
			}
			h.waitLog("ti-bad-"+c.name, "worker log line", event("worker", "bad defer file"))
		})
	}
}

func TestResumedCommandEnv(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	script := `echo "method=${TASKWIRE_NEXT_METHOD-unset} kwargs=${TASKWIRE_NEXT_KWARGS-unset} event=${TASKWIRE_EVENT-unset}"`
	cmd := activity.Entrypoint{Command: []string{"sh", "-c", script}}
	h.execute("ti-resumed", "default", cmd, fakeTI{}, func(et *activity.ExecuteTask) {
		et.NextMethod = "again"
		et.NextKwargs = map[string]any{"round": 1, "event": map[string]any{"status": "done"}}
	})
	// The run response's next method wins over the activity's.
	h.execute("ti-resumed-noevent", "default", cmd, fakeTI{nextMethod: "resume", nextKwargs: map[string]any{"round": 2}},
		func(et *activity.ExecuteTask) { et.NextMethod = "stale" })
	h.execute("ti-resumed-nokwargs", "default", cmd, fakeTI{}, func(et *activity.ExecuteTask) { et.NextMethod = "resume" })
	h.execute("ti-first-run", "default", cmd, fakeTI{}, nil)
	for id, want := range map[string]string{
		"ti-resumed":          `method=again kwargs={"event":{"status":"done"},"round":1} event={"status":"done"}`,
		"ti-resumed-noevent":  `method=resume kwargs={"round":2} event=`,
		"ti-resumed-nokwargs": `method=resume kwargs={} event=`,
		"ti-first-run":        `method=unset kwargs=unset event=unset`,
	} {
		wantState(t, h.waitState(id), activity.StateSuccess, "")
		if !h.findLog(id, func(r map[string]any) bool { return r["logger"] == "stdout" && r["event"] == want }) {
			t.Errorf("%s: no stdout line %q in %v", id, want, h.logsOf(id))
		}
	}
}

func TestReadDeferFileMissing(t *testing.T) {
	t.Parallel()
	if _, err := readDeferFile(filepath.Join(t.TempDir(), "defer.json")); !errors.Is(err, errNoDeferFile) {
		t.Errorf("err = %v, want errNoDeferFile", err)
	}
}
