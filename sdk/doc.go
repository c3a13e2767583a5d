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
//     already sent); it resumes later with NextMethod and NextKwargs.
//   - any other error: RetryTask with the error's text as the reason; the
//     executor retries while tries remain and fails the task otherwise.
//   - a panic: recovered into a *PanicError, reported like any other error,
//     with the panic value and stack in the reason.
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
// log.
package sdk
