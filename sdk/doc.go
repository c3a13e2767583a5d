// Package sdk is the Go task SDK: a Go program registers task functions by
// task id and hands control to the Runtime, which speaks the task protocol
// (package protocol) with the worker that started it.
//
// A runtime binary is a few lines:
//
//	func main() {
//		r := sdk.New()
//		r.Register("extract", extract)
//		r.Register("load", load)
//		r.Main()
//	}
//
// The worker starts the binary per task try with the addresses it listens on
// (flags --comm and --logs, or TASKWIRE_COMM_ADDR and TASKWIRE_LOGS_ADDR)
// and the body codec (--codec or TASKWIRE_CODEC: msgpack, the default, or
// json). The runtime connects, reads StartupDetails, runs the task it names
// (StartupDetails.Context.Entrypoint, else the task id), and reports how it
// ended with exactly one terminal message.
//
// # Outcomes
//
// What the TaskFunc returns decides the outcome:
//
//   - nil: SucceedTask.
//   - Skip(reason): TaskState skipped.
//   - Fail(err): TaskState failed, with no retry.
//   - the error returned by Task.Defer: the task is deferred (DeferTask was
//     already sent); it resumes later with NextMethod and NextKwargs (see
//     Deferral).
//   - any other error: RetryTask with the error's text as the reason; the
//     executor retries while tries remain and fails the task otherwise.
//   - a panic: recovered into a *PanicError, reported like any other error,
//     with the panic value and stack in the reason.
//
// # Deferral
//
// A task that waits for something outside it (a time, a file, an HTTP
// endpoint, an external event) should not hold a worker slot while it waits.
// It defers instead: Task.Defer names a trigger and its kwargs, the method to
// resume at and that method's kwargs, and the TaskFunc returns Defer's error.
// The worker reports the try deferred and the process exits. When the
// trigger fires, the executor runs the task again, the same try, with
// NextMethod set to that method and NextKwargs to its kwargs plus the
// trigger's payload under "event" (Task.Event).
//
// A resumed task runs the function registered for its method with
// RegisterMethod; without one, its Register'ed function runs and can branch
// on Task.NextMethod; with neither, it fails with no retry ("no method …
// for task …"). A method may defer again, to the same method or another:
//
//	r.Register("wait", func(ctx context.Context, t *sdk.Task) error {
//		return t.Defer(ctx, "timedelta", map[string]any{"delta": 30}, "resume", nil, 0)
//	})
//	r.RegisterMethod("wait", "resume", func(ctx context.Context, t *sdk.Task) error {
//		return t.XComPush(ctx, "event", t.Event())
//	})
//
// When the trigger fails or passes its timeout, the task is resumed with
// FailMethod and the error in NextKwargs()["error"]; the worker (or, failing
// that, the Runtime) ends the try as a failure with that error, retried while
// tries remain, without running any task code.
//
// # Talking to the worker
//
// Task's methods (Variable, SetVariable, Connection, XComPush, XComPull,
// XComDelete, MaskSecret) are requests to the worker, which answers them
// through the Execution API with the task's own credentials; the task
// process never holds a token. They may be called from several goroutines.
// An ErrorResponse from the worker becomes an *APIError, which matches
// ErrNotFound for "not_found". Every request honours its context and, when
// the context has no deadline, gives up after RequestTimeoutDefault.
//
// Task.Logger writes JSON lines ({"timestamp", "level", "event", "logger",
// attributes...}) to the worker's logs socket, which ships them to the task's
// log. An attribute named "timestamp", "level" or "event" is written as
// "timestamp_", "level_" or "event_", so that it cannot hide the record's own.
package sdk
