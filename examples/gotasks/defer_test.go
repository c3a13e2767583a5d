package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/internal/runtimetest"
	"github.com/taskwire/taskwire/internal/testbin"
	"github.com/taskwire/taskwire/protocol"
)

// resumedAt makes the stand-in worker resume the task at method.
func resumedAt(method string, kwargs map[string]any) func(*protocol.StartupDetails) {
	return func(sd *protocol.StartupDetails) {
		sd.NextMethod = method
		sd.NextKwargs = kwargs
	}
}

// deferred checks that the task deferred on trigger classpath with kwargs
// (numbers compared as float64) and timeout, to resume at next.
func deferred(classpath string, kwargs map[string]any, timeout, next string, check func(t *testing.T, nextKwargs map[string]any)) runtimetest.Check {
	return func(t *testing.T, r runtimetest.Result) {
		t.Helper()
		d, ok := r.Terminal.(protocol.DeferTask)
		if !ok {
			t.Fatalf("terminal %#v, want DeferTask\nlogs:\n%s", r.Terminal, r.Logs)
		}
		got := map[string]any{}
		for k, v := range d.TriggerKwargs {
			if n, ok := number(v); ok {
				v = n
			}
			got[k] = v
		}
		if d.Classpath != classpath || !reflect.DeepEqual(got, kwargs) || d.TriggerTimeout != timeout || d.NextMethod != next {
			t.Errorf("DeferTask %s %#v timeout %q next %q, want %s %#v %q %q", d.Classpath, d.TriggerKwargs, d.TriggerTimeout, d.NextMethod,
				classpath, kwargs, timeout, next)
		}
		if check != nil {
			check(t, d.NextKwargs)
		}
	}
}

func deferredAtNow(t *testing.T, kw map[string]any) {
	t.Helper()
	at, err := time.Parse(time.RFC3339, kw["deferred_at"].(string))
	if err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("next_kwargs %#v: deferred_at is not now (%v)", kw, err)
	}
}

func round(n int) func(*testing.T, map[string]any) {
	return func(t *testing.T, kw map[string]any) {
		t.Helper()
		if got, ok := number(kw["round"]); !ok || got != float64(n) || len(kw) != 1 {
			t.Errorf("next_kwargs %#v, want round %d", kw, n)
		}
	}
}

// pushed checks that the task succeeded after pushing XCom key = want.
func pushed(key string, want any) runtimetest.Check {
	return func(t *testing.T, r runtimetest.Result) {
		t.Helper()
		runtimetest.Succeeded(t, r)
		for _, m := range r.Requests {
			if x, ok := m.(protocol.SetXCom); ok && x.Key == key {
				if !reflect.DeepEqual(x.Value, want) {
					t.Errorf("XCom %s = %#v, want %#v", key, x.Value, want)
				}
				return
			}
		}
		t.Errorf("no XCom %s pushed in %#v", key, r.Requests)
	}
}

func TestDeferringTasks(t *testing.T) {
	bin := testbin.MustBuild(t, "./examples/gotasks")
	event := map[string]any{"fired_at": "2026-11-22T08:00:01Z", "n": int64(3)}
	resumeKwargs := map[string]any{"deferred_at": "2026-11-22T08:00:00Z", "event": event}
	tests := []struct {
		name   string
		task   string
		params map[string]any
		resume func(*protocol.StartupDetails)
		check  runtimetest.Check
	}{
		{"wait", "wait", map[string]any{"seconds": 2.5}, nil,
			deferred("timedelta", map[string]any{"delta": 2.5}, "", "resume", deferredAtNow)},
		{"wait_default", "wait", nil, nil,
			deferred("timedelta", map[string]any{"delta": 1.0}, "", "resume", deferredAtNow)},
		{"wait_int_seconds", "wait", map[string]any{"seconds": int64(3)}, nil,
			deferred("timedelta", map[string]any{"delta": 3.0}, "", "resume", nil)},
		{"wait_bad_seconds", "wait", map[string]any{"seconds": "soon"}, nil, runtimetest.Failed("params.seconds")},
		{"wait_resume", "wait", nil, resumedAt("resume", resumeKwargs),
			runtimetest.All(pushed("event", event), runtimetest.Logged(`"event":"resumed"`, `"fired_at":"2026-11-22T08:00:01Z"`))},
		{"wait_resume_no_event", "wait", nil, resumedAt("resume", map[string]any{"deferred_at": "x"}), pushed("event", nil)},
		{"wait_trigger_failed", "wait", nil, resumedAt("__fail__", map[string]any{"error": "trigger timeout after 2s"}),
			runtimetest.Retried("trigger timeout after 2s")},

		{"wait_twice", "wait_twice", nil, nil, deferred("timedelta", map[string]any{"delta": 0.2}, "", "again", round(1))},
		{"wait_twice_round1", "wait_twice", map[string]any{"seconds": 0.1}, resumedAt("again", map[string]any{"round": int64(1), "event": nil}),
			deferred("timedelta", map[string]any{"delta": 0.1}, "", "again", round(2))},
		{"wait_twice_round1_float", "wait_twice", nil, resumedAt("again", map[string]any{"round": 1.0}),
			deferred("timedelta", map[string]any{"delta": 0.2}, "", "again", round(2))},
		{"wait_twice_round2", "wait_twice", nil, resumedAt("again", map[string]any{"round": int64(2)}), pushed("rounds", int64(2))},
		{"wait_twice_round2_float", "wait_twice", nil, resumedAt("again", map[string]any{"round": 2.0}), pushed("rounds", int64(2))},
		{"wait_twice_bad_round", "wait_twice", nil, resumedAt("again", map[string]any{"round": int64(7)}), runtimetest.Failed("want 1 or 2")},

		{"wait_event", "wait_event", map[string]any{"name": "go", "timeout": 2.5}, nil,
			deferred("event", map[string]any{"name": "go"}, "2.5s", "resume", deferredAtNow)},
		{"wait_event_no_timeout", "wait_event", map[string]any{"name": "go"}, nil,
			deferred("event", map[string]any{"name": "go"}, "", "resume", nil)},
		{"wait_event_no_name", "wait_event", nil, nil, runtimetest.Failed("params.name is required")},
		{"wait_event_resume", "wait_event", map[string]any{"name": "go"}, resumedAt("resume", resumeKwargs), pushed("event", event)},

		{"wait_http", "wait_http", map[string]any{"url": "http://127.0.0.1:1/ready", "contains": "ok"}, nil,
			deferred("http", map[string]any{"url": "http://127.0.0.1:1/ready", "interval": "50ms", "body_contains": "ok"}, "", "resume", deferredAtNow)},
		{"wait_http_any_body", "wait_http", map[string]any{"url": "http://127.0.0.1:1/ready"}, nil,
			deferred("http", map[string]any{"url": "http://127.0.0.1:1/ready", "interval": "50ms"}, "", "resume", nil)},
		{"wait_http_no_url", "wait_http", nil, nil, runtimetest.Failed("params.url is required")},
		{"wait_http_resume", "wait_http", map[string]any{"url": "u"}, resumedAt("resume", map[string]any{"event": "body"}), pushed("event", "body")},
	}
	for _, codec := range []protocol.Codec{protocol.CodecMsgpack, protocol.CodecJSON} {
		for _, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				var opts []func(*protocol.StartupDetails)
				if tt.resume != nil {
					opts = append(opts, tt.resume)
				}
				r := runTask(t, bin, codec, tt.task, runtimetest.Store{}, tt.params, false, opts...)
				if r.Err != nil {
					t.Errorf("exit: %v\n%s", r.Err, r.Output)
				}
				tt.check(t, r)
				if strings.Contains(r.Output, "panic") {
					t.Errorf("output:\n%s", r.Output)
				}
			})
		}
	}
}
