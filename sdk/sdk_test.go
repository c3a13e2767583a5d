package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/sdk"
)

// run registers fn as task, runs it against a fake worker and returns the
// worker once the task has hung up.
func run(t *testing.T, codec protocol.Codec, task string, fn sdk.TaskFunc, opts ...func(*fakeWorker)) *fakeWorker {
	t.Helper()
	w := worker(t, codec, task, opts...)
	r := sdk.New()
	r.Codec = codec
	r.LogLevel = -4 // debug
	if fn != nil {
		r.Register(task, fn)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := r.Run(ctx, w.comm.Addr().String(), w.logs.Addr().String()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return w
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fn    sdk.TaskFunc
		check func(t *testing.T, m protocol.Message)
	}{
		{"success", func(context.Context, *sdk.Task) error { return nil }, func(t *testing.T, m protocol.Message) {
			if s, ok := m.(protocol.SucceedTask); !ok || s.EndDate == "" {
				t.Errorf("got %#v, want SucceedTask with an end date", m)
			}
		}},
		{"error_retries", func(context.Context, *sdk.Task) error { return errors.New("upstream 503") }, func(t *testing.T, m protocol.Message) {
			if r, ok := m.(protocol.RetryTask); !ok || r.Reason != "upstream 503" {
				t.Errorf("got %#v, want RetryTask upstream 503", m)
			}
		}},
		{"fail", func(context.Context, *sdk.Task) error {
			return fmt.Errorf("load: %w", sdk.Fail(errors.New("bad input")))
		}, func(t *testing.T, m protocol.Message) {
			if s, ok := m.(protocol.TaskState); !ok || s.State != "failed" || s.Reason != "load: bad input" {
				t.Errorf("got %#v, want TaskState failed", m)
			}
		}},
		{"skip", func(context.Context, *sdk.Task) error { return sdk.Skip("no new data") }, func(t *testing.T, m protocol.Message) {
			if s, ok := m.(protocol.TaskState); !ok || s.State != "skipped" || s.Reason != "no new data" {
				t.Errorf("got %#v, want TaskState skipped", m)
			}
		}},
		{"panic", func(context.Context, *sdk.Task) error { panic("kaboom") }, func(t *testing.T, m protocol.Message) {
			r, ok := m.(protocol.RetryTask)
			if !ok || !strings.HasPrefix(r.Reason, "panic: kaboom") || !strings.Contains(r.Reason, "sdk_test.TestOutcomes") {
				t.Errorf("got %#v, want RetryTask with the panic and its stack", m)
			}
		}},
		{"unregistered", nil, func(t *testing.T, m protocol.Message) {
			if s, ok := m.(protocol.TaskState); !ok || s.State != "failed" || !strings.Contains(s.Reason, "unregistered") {
				t.Errorf("got %#v, want TaskState failed naming the task", m)
			}
		}},
		{"defer", func(ctx context.Context, task *sdk.Task) error {
			return task.Defer(ctx, "taskwire.triggers.TimeDelta", map[string]any{"delta": "1m"}, "resume", map[string]any{"n": 1}, 90*time.Second)
		}, func(t *testing.T, m protocol.Message) {
			want := protocol.DeferTask{Type: protocol.TypeDeferTask, Classpath: "taskwire.triggers.TimeDelta", TriggerKwargs: map[string]any{"delta": "1m"},
				TriggerTimeout: "1m30s", NextMethod: "resume", NextKwargs: map[string]any{"n": int64(1)}}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("got %#v, want %#v", m, want)
			}
		}},
		{"defer_then_nil", func(ctx context.Context, task *sdk.Task) error {
			_ = task.Defer(ctx, "taskwire.triggers.TimeDelta", nil, "resume", nil, 0)
			return nil
		}, func(t *testing.T, m protocol.Message) {
			if _, ok := m.(protocol.DeferTask); !ok {
				t.Errorf("got %#v, want DeferTask alone", m)
			}
		}},
	}
	for _, codec := range codecs {
		for _, tt := range tests {
			t.Run(codec.String()+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				w := run(t, codec, tt.name, tt.fn)
				tt.check(t, w.terminal(t))
			})
		}
	}
}

func TestDeferRefusedRetries(t *testing.T) {
	t.Parallel()
	refuse := func(w *fakeWorker) {
		w.answer = func(m protocol.Message) (protocol.Message, *protocol.ErrorResponse, bool) {
			if _, ok := m.(protocol.DeferTask); ok {
				return nil, &protocol.ErrorResponse{Error: "bad_request", Detail: map[string]any{"message": "DeferTask needs classpath and next_method"}}, true
			}
			return nil, nil, false
		}
	}
	w := run(t, protocol.CodecMsgpack, "defer", func(ctx context.Context, task *sdk.Task) error {
		err := task.Defer(ctx, "", nil, "", nil, 0)
		if errors.Is(err, sdk.ErrDeferred) {
			return sdk.Fail(errors.New("a refused deferral returned ErrDeferred"))
		}
		return err
	}, refuse)
	if r, ok := w.terminal(t).(protocol.RetryTask); !ok || !strings.Contains(r.Reason, "bad_request") {
		t.Errorf("terminal %#v, want RetryTask with the worker's refusal", r)
	}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			conn := protocol.ConnectionResult{ConnID: "db", ConnType: "postgres", Host: "db.internal", Port: 5432, Login: "app", Password: "s3cret",
				Extra: map[string]any{"sslmode": "require"}}
			var got struct {
				greeting, missingErr, connErr string
				conn                          protocol.ConnectionResult
				pulled, nested, absent        any
				setThenGet                    string
				apiErr                        *sdk.APIError
			}
			setup := func(w *fakeWorker) {
				w.variables["greeting"] = "hello taskwire"
				w.connections["db"] = conn
				w.answer = func(m protocol.Message) (protocol.Message, *protocol.ErrorResponse, bool) {
					if v, ok := m.(protocol.GetVariable); ok && v.Key == "secret" {
						return nil, &protocol.ErrorResponse{Error: "forbidden", Detail: map[string]any{"message": "no"}}, true
					}
					return nil, nil, false
				}
			}
			w := run(t, codec, "requests", func(ctx context.Context, task *sdk.Task) error {
				var err error
				if got.greeting, err = task.Variable(ctx, "greeting"); err != nil {
					return err
				}
				if _, err := task.Variable(ctx, "missing"); !errors.Is(err, sdk.ErrNotFound) {
					return fmt.Errorf("missing variable: %v, want ErrNotFound", err)
				} else {
					got.missingErr = err.Error()
				}
				if _, err := task.Variable(ctx, "secret"); !errors.As(err, &got.apiErr) || errors.Is(err, sdk.ErrNotFound) {
					return fmt.Errorf("forbidden variable: %v, want an APIError", err)
				}
				if err := task.SetVariable(ctx, "last_run", "2026-11-22"); err != nil {
					return err
				}
				if got.setThenGet, err = task.Variable(ctx, "last_run"); err != nil {
					return err
				}
				if got.conn, err = task.Connection(ctx, "db"); err != nil {
					return err
				}
				if _, err := task.Connection(ctx, "nope"); !errors.Is(err, sdk.ErrNotFound) {
					return fmt.Errorf("missing connection: %v, want ErrNotFound", err)
				} else {
					got.connErr = err.Error()
				}
				if err := task.XComPush(ctx, "value", 42); err != nil {
					return err
				}
				if err := task.XComPush(ctx, "nested", map[string]any{"rows": []any{1, "two", 3.5}, "ok": true}); err != nil {
					return err
				}
				if got.pulled, err = task.XComPull(ctx, task.TI().TaskID, "value"); err != nil {
					return err
				}
				if got.nested, err = task.XComPull(ctx, task.TI().TaskID, "nested"); err != nil {
					return err
				}
				if err := task.XComDelete(ctx, "nested"); err != nil {
					return err
				}
				if got.absent, err = task.XComPull(ctx, task.TI().TaskID, "nested"); err != nil {
					return err
				}
				return task.MaskSecret(ctx, "s3cret")
			}, setup)
			if m, ok := w.terminal(t).(protocol.SucceedTask); !ok {
				t.Fatalf("terminal %#v, want SucceedTask", m)
			}
			if got.greeting != "hello taskwire" || got.setThenGet != "2026-11-22" {
				t.Errorf("variables %q %q", got.greeting, got.setThenGet)
			}
			if !strings.Contains(got.missingErr, "missing") || !strings.Contains(got.connErr, "nope") {
				t.Errorf("errors do not name what is missing: %q, %q", got.missingErr, got.connErr)
			}
			if got.apiErr.Code != "forbidden" || got.apiErr.Detail["message"] != "no" {
				t.Errorf("APIError %#v", got.apiErr)
			}
			conn.Type = protocol.TypeConnectionResult
			if !reflect.DeepEqual(got.conn, conn) {
				t.Errorf("connection %#v, want %#v", got.conn, conn)
			}
			if got.pulled != int64(42) {
				t.Errorf("pulled %#v, want int64(42)", got.pulled)
			}
			if want := map[string]any{"rows": []any{int64(1), "two", 3.5}, "ok": true}; !reflect.DeepEqual(got.nested, want) {
				t.Errorf("pulled %#v, want %#v", got.nested, want)
			}
			if got.absent != nil {
				t.Errorf("deleted XCom pulled as %#v, want nil", got.absent)
			}
			// The push carried the task's identity.
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, m := range w.requests {
				if x, ok := m.(protocol.SetXCom); ok && (x.DagID != "etl" || x.RunID != "run-1" || x.TaskID != "requests" || x.MapIndex == nil || *x.MapIndex != -1) {
					t.Errorf("SetXCom %#v lacks the task's identity", x)
				}
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	const n = 50
	setup := func(w *fakeWorker) {
		for i := range n {
			w.variables[fmt.Sprint("v", i)] = fmt.Sprint("value-", i)
		}
	}
	w := run(t, protocol.CodecMsgpack, "fanout", func(ctx context.Context, task *sdk.Task) error {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := task.Variable(ctx, fmt.Sprint("v", i))
				if err == nil && v != fmt.Sprint("value-", i) {
					err = fmt.Errorf("v%d = %q", i, v)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return sdk.Fail(err)
			}
		}
		return nil
	}, setup)
	if m, ok := w.terminal(t).(protocol.SucceedTask); !ok {
		t.Fatalf("terminal %#v, want SucceedTask", m)
	}
}

func TestTaskSeesStartupDetails(t *testing.T) {
	t.Parallel()
	var ti protocol.TaskInstance
	var rc protocol.RunContext
	var next string
	var kwargs map[string]any
	resume := func(w *fakeWorker) {
		w.startup.Context.Entrypoint = "" // falls back to the task id
		w.startup.NextMethod = "resume"
		w.startup.NextKwargs = map[string]any{"event": map[string]any{"status": "done"}}
	}
	w := run(t, protocol.CodecJSON, "resumed", func(ctx context.Context, task *sdk.Task) error {
		ti, rc, next, kwargs = task.TI(), task.Context(), task.NextMethod(), task.NextKwargs()
		return nil
	}, resume)
	w.terminal(t)
	if ti.ID != "ti-1" || ti.TaskID != "resumed" || ti.MapIndex != -1 || rc.Queue != "go" || rc.Params["day"] != "2026-11-22" {
		t.Errorf("TI %#v, context %#v", ti, rc)
	}
	if next != "resume" || !reflect.DeepEqual(kwargs, map[string]any{"event": map[string]any{"status": "done"}}) {
		t.Errorf("next %q %#v", next, kwargs)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			w := run(t, codec, "logs", func(ctx context.Context, task *sdk.Task) error {
				task.Logger().Info("pushed", "key", "value", "n", 42)
				task.Logger().Warn("slow", "err", errors.New("took 3s"))
				task.Logger().Debug("details", "nested", map[string]any{"a": 1})
				return nil
			})
			w.terminal(t)
			rec := w.line(t, func(r map[string]any) bool { return r["event"] == "pushed" })
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["timestamp"])); err != nil {
				t.Errorf("timestamp: %v", err)
			}
			if rec["level"] != "info" || rec["logger"] != "task" || rec["key"] != "value" || rec["n"] != float64(42) {
				t.Errorf("log line %v", rec)
			}
			rec = w.line(t, func(r map[string]any) bool { return r["event"] == "slow" })
			if rec["level"] != "warning" || rec["err"] != "took 3s" {
				t.Errorf("log line %v", rec)
			}
			rec = w.line(t, func(r map[string]any) bool { return r["event"] == "details" })
			if rec["level"] != "debug" {
				t.Errorf("log line %v", rec)
			}
		})
	}
}

func TestPanicIsLogged(t *testing.T) {
	t.Parallel()
	w := run(t, protocol.CodecMsgpack, "panics", func(context.Context, *sdk.Task) error { panic(errors.New("nil map")) })
	w.terminal(t)
	rec := w.line(t, func(r map[string]any) bool { return r["event"] == "task panicked" })
	if rec["level"] != "error" || !strings.Contains(fmt.Sprint(rec["stack"]), "goroutine") {
		t.Errorf("log line %v", rec)
	}
}

func TestWorkerGoneCancelsTask(t *testing.T) {
	t.Parallel()
	w := worker(t, protocol.CodecMsgpack, "long", func(w *fakeWorker) { w.dropAfter = 2 })
	r := sdk.New()
	var cause error
	r.Register("long", func(ctx context.Context, task *sdk.Task) error {
		_ = task.MaskSecret(ctx, "x")                 // answered
		go func() { _ = task.MaskSecret(ctx, "y") }() // the worker hangs up on this one
		<-ctx.Done()
		cause = context.Cause(ctx)
		return ctx.Err()
	})
	err := r.Run(t.Context(), w.comm.Addr().String(), w.logs.Addr().String())
	if !errors.Is(cause, sdk.ErrWorkerGone) {
		t.Errorf("task context cause %v, want ErrWorkerGone", cause)
	}
	if err == nil {
		t.Error("Run returned nil with no outcome reported")
	}
}

func TestRunCancelledBeforeStartup(t *testing.T) {
	t.Parallel()
	ln := listenSilent(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := sdk.New().Run(ctx, ln, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run: %v, want DeadlineExceeded", err)
	}
}

func TestRegisterPanics(t *testing.T) {
	t.Parallel()
	r := sdk.New()
	r.Register("a", func(context.Context, *sdk.Task) error { return nil })
	for name, f := range map[string]func(){
		"duplicate": func() { r.Register("a", func(context.Context, *sdk.Task) error { return nil }) },
		"empty_id":  func() { r.Register("", func(context.Context, *sdk.Task) error { return nil }) },
		"nil_func":  func() { r.Register("b", nil) },
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
}

func TestLogAttributesCannotHideRecordFields(t *testing.T) {
	t.Parallel()
	w := run(t, protocol.CodecMsgpack, "collide", func(ctx context.Context, task *sdk.Task) error {
		task.Logger().Info("resumed", "event", map[string]any{"n": 1}, "level", "deep", "timestamp", "then")
		return nil
	})
	w.terminal(t)
	rec := w.line(t, func(r map[string]any) bool { return r["event"] == "resumed" })
	if rec["level"] != "info" || rec["level_"] != "deep" || rec["timestamp_"] != "then" || fmt.Sprint(rec["event_"]) != "map[n:1]" {
		t.Errorf("log line %v", rec)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["timestamp"])); err != nil {
		t.Errorf("timestamp: %v", err)
	}
}
