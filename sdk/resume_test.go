package sdk_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/sdk"
)

// runRuntime runs r for task against a fake worker and returns the worker
// once the task has hung up.
func runRuntime(t *testing.T, codec protocol.Codec, r *sdk.Runtime, task string, opts ...func(*fakeWorker)) *fakeWorker {
	t.Helper()
	w := worker(t, codec, task, opts...)
	r.Codec = codec
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := r.Run(ctx, w.comm.Addr().String(), w.logs.Addr().String()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return w
}

// resumedAt makes the fake worker resume the task at method with kwargs.
func resumedAt(method string, kwargs map[string]any) func(*fakeWorker) {
	return func(w *fakeWorker) {
		w.startup.NextMethod = method
		w.startup.NextKwargs = kwargs
	}
}

// calls records which registered functions ran, and what they saw.
type calls struct {
	mu    sync.Mutex
	names []string
	next  []string
}

func (c *calls) fn(name string) sdk.TaskFunc {
	return func(ctx context.Context, t *sdk.Task) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.names = append(c.names, name)
		c.next = append(c.next, t.NextMethod())
		return nil
	}
}

func TestResumeDispatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		register func(r *sdk.Runtime, c *calls)
		method   string
		ran      string // the function that ran, "" for none
		failed   string // the TaskState failed reason when none ran
	}{
		{"first_run_runs_main", func(r *sdk.Runtime, c *calls) {
			r.Register("task", c.fn("main"))
			r.RegisterMethod("task", "resume", c.fn("resume"))
		}, "", "main", ""},
		{"method_registered", func(r *sdk.Runtime, c *calls) {
			r.Register("task", c.fn("main"))
			r.RegisterMethod("task", "resume", c.fn("resume"))
			r.RegisterMethod("task", "again", c.fn("again"))
		}, "again", "again", ""},
		{"method_without_main", func(r *sdk.Runtime, c *calls) {
			r.RegisterMethod("task", "resume", c.fn("resume"))
		}, "resume", "resume", ""},
		{"falls_back_to_main", func(r *sdk.Runtime, c *calls) {
			r.Register("task", c.fn("main"))
			r.RegisterMethod("task", "other", c.fn("other"))
		}, "resume", "main", ""},
		{"method_of_another_task", func(r *sdk.Runtime, c *calls) {
			r.RegisterMethod("another", "resume", c.fn("another.resume"))
		}, "resume", "", `no method "resume" for task "task"`},
		{"only_methods_first_run", func(r *sdk.Runtime, c *calls) {
			r.RegisterMethod("task", "resume", c.fn("resume"))
		}, "", "", `no task "task"`},
	}
	for _, codec := range codecs {
		for _, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				r := sdk.New()
				c := &calls{}
				tt.register(r, c)
				w := runRuntime(t, codec, r, "task", resumedAt(tt.method, map[string]any{"round": 1}))
				m := w.terminal(t)
				if tt.ran == "" {
					if s, ok := m.(protocol.TaskState); !ok || s.State != "failed" || !strings.Contains(s.Reason, tt.failed) {
						t.Errorf("terminal %#v, want TaskState failed with %q", m, tt.failed)
					}
					if len(c.names) != 0 {
						t.Errorf("ran %v, want nothing", c.names)
					}
					return
				}
				if _, ok := m.(protocol.SucceedTask); !ok {
					t.Errorf("terminal %#v, want SucceedTask", m)
				}
				if !reflect.DeepEqual(c.names, []string{tt.ran}) || c.next[0] != tt.method {
					t.Errorf("ran %v with next methods %q, want [%s] with %q", c.names, c.next, tt.ran, tt.method)
				}
			})
		}
	}
}

func TestResumeWithFailMethodRunsNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		kwargs map[string]any
		reason string
	}{
		{"with_error", map[string]any{"error": "trigger timeout after 2s"}, "trigger timeout after 2s"},
		{"without_error", nil, "trigger failed"},
		{"error_not_a_string", map[string]any{"error": 3}, "trigger failed"},
	}
	for _, codec := range codecs {
		for _, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				r := sdk.New()
				c := &calls{}
				r.Register("task", c.fn("main"))
				r.RegisterMethod("task", "resume", c.fn("resume"))
				w := runRuntime(t, codec, r, "task", resumedAt(sdk.FailMethod, tt.kwargs))
				if m, ok := w.terminal(t).(protocol.RetryTask); !ok || m.Reason != tt.reason {
					t.Errorf("terminal %#v, want RetryTask %q", m, tt.reason)
				}
				if len(c.names) != 0 {
					t.Errorf("ran %v, want nothing", c.names)
				}
			})
		}
	}
}

func TestEvent(t *testing.T) {
	t.Parallel()
	for _, codec := range codecs {
		for name, c := range map[string]struct {
			kwargs map[string]any
			want   any
		}{
			"first_run":   {nil, nil},
			"no_event":    {map[string]any{"round": 1}, nil},
			"null_event":  {map[string]any{"event": nil}, nil},
			"map_event":   {map[string]any{"event": map[string]any{"status": "done", "n": 2}}, map[string]any{"status": "done", "n": int64(2)}},
			"float_event": {map[string]any{"event": 1.5}, 1.5},
		} {
			t.Run(codec.String()+"/"+name, func(t *testing.T) {
				t.Parallel()
				var got any = "unset"
				r := sdk.New()
				r.Register("task", func(ctx context.Context, task *sdk.Task) error {
					got = task.Event()
					return nil
				})
				method := "resume"
				if c.kwargs == nil {
					method = ""
				}
				runRuntime(t, codec, r, "task", resumedAt(method, c.kwargs)).terminal(t)
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("Event() = %#v, want %#v", got, c.want)
				}
			})
		}
	}
}

// TestDeferAgain resumes a task that defers again from its method, as a
// polling loop does.
func TestDeferAgain(t *testing.T) {
	t.Parallel()
	r := sdk.New()
	r.RegisterMethod("poll", "again", func(ctx context.Context, task *sdk.Task) error {
		round, _ := task.NextKwargs()["round"].(int64)
		return task.Defer(ctx, "timedelta", map[string]any{"delta": 1}, "again", map[string]any{"round": round + 1}, 0)
	})
	w := runRuntime(t, protocol.CodecMsgpack, r, "poll", resumedAt("again", map[string]any{"round": 1, "event": "tick"}))
	d, ok := w.terminal(t).(protocol.DeferTask)
	if !ok || d.NextMethod != "again" || d.NextKwargs["round"] != int64(2) {
		t.Errorf("terminal %#v, want DeferTask again round 2", d)
	}
}

func TestDeferToFailMethodRefused(t *testing.T) {
	t.Parallel()
	var deferErr error
	w := run(t, protocol.CodecMsgpack, "task", func(ctx context.Context, task *sdk.Task) error {
		deferErr = task.Defer(ctx, "timedelta", nil, sdk.FailMethod, nil, 0)
		return sdk.Fail(deferErr)
	})
	if deferErr == nil || errors.Is(deferErr, sdk.ErrDeferred) || !strings.Contains(deferErr.Error(), "reserved") {
		t.Errorf("Defer = %v, want a refusal", deferErr)
	}
	if s, ok := w.terminal(t).(protocol.TaskState); !ok || s.State != "failed" {
		t.Errorf("terminal %#v, want TaskState failed", s)
	}
}

func TestRegisterMethodPanics(t *testing.T) {
	t.Parallel()
	nop := func(context.Context, *sdk.Task) error { return nil }
	r := sdk.New()
	r.RegisterMethod("a", "resume", nop)
	r.RegisterMethod("a", "other", nop)
	r.RegisterMethod("b", "resume", nop)
	r.Register("a", nop) // a task and its methods are registered apart
	for name, f := range map[string]func(){
		"duplicate":    func() { r.RegisterMethod("a", "resume", nop) },
		"empty_id":     func() { r.RegisterMethod("", "resume", nop) },
		"empty_method": func() { r.RegisterMethod("a", "", nop) },
		"nil_func":     func() { r.RegisterMethod("a", "third", nil) },
		"fail_method":  func() { r.RegisterMethod("a", sdk.FailMethod, nop) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	// The zero Runtime works too.
	var zero sdk.Runtime
	zero.RegisterMethod("a", "resume", nop)
}
