package sdk

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/taskwire/taskwire/protocol"
)

// Environment variables Main reads when the flags are not given.
const (
	EnvCommAddr = "TASKWIRE_COMM_ADDR"
	EnvLogsAddr = "TASKWIRE_LOGS_ADDR"
	EnvCodec    = "TASKWIRE_CODEC"
)

// Network is the network of a worker address: "unix" for an absolute path
// (a unix socket), else "tcp" (HOST:PORT).
func Network(addr string) string {
	if filepath.IsAbs(addr) {
		return "unix"
	}
	return "tcp"
}

// DialTimeoutDefault bounds connecting to the worker when Run's context has
// no deadline.
const DialTimeoutDefault = 10 * time.Second

// maxReasonLen bounds the reason sent with a terminal message.
const maxReasonLen = 16 << 10

// Runtime runs registered tasks for a worker. Set its fields before Run.
type Runtime struct {
	// Codec is the body encoding on the comm socket; the zero value is
	// msgpack. Main sets it from --codec or TASKWIRE_CODEC.
	Codec protocol.Codec
	// LogLevel is the lowest level Task.Logger writes; the zero value is
	// slog.LevelInfo.
	LogLevel slog.Level
	// Secret is the runtime's secret, presented first on every comm and
	// logs connection (protocol.AuthFrame, protocol.LogStreamHeader); the
	// zero value means the worker's, from TASKWIRE_COMM_SECRET.
	Secret string

	mu      sync.Mutex
	tasks   map[string]TaskFunc
	methods map[methodKey]TaskFunc
}

// methodKey names a resume method of a task.
type methodKey struct{ task, method string }

// FailMethod is the next_method with which the executor resumes a task
// whose trigger failed, ended without an event or passed its timeout
// (Airflow's "__fail__"); NextKwargs()["error"] says why. Workers end such
// a try themselves; a runtime that is started with it anyway reports the
// error for a retry without calling any task code, and it cannot be
// registered as a method.
const FailMethod = "__fail__"

// triggerFailedDefault is the reason of a FailMethod resume without an
// error.
const triggerFailedDefault = "trigger failed"

// New returns a Runtime with no tasks.
func New() *Runtime {
	return &Runtime{tasks: map[string]TaskFunc{}, methods: map[methodKey]TaskFunc{}}
}

// Register makes fn the code of task taskID. It panics when taskID is empty,
// fn is nil or taskID is already registered.
func (r *Runtime) Register(taskID string, fn TaskFunc) {
	if taskID == "" || fn == nil {
		panic("sdk: Register needs a task id and a function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tasks == nil {
		r.tasks = map[string]TaskFunc{}
	}
	if _, ok := r.tasks[taskID]; ok {
		panic("sdk: task " + taskID + " registered twice")
	}
	r.tasks[taskID] = fn
}

// RegisterMethod makes fn the code that task taskID resumes at when a
// trigger it deferred on fires with next_method method (see Task.Defer). A
// resumed task without a method of that name runs its Register'ed function,
// which can branch on Task.NextMethod. RegisterMethod panics when taskID or
// method is empty, method is FailMethod, fn is nil or the method is already
// registered.
func (r *Runtime) RegisterMethod(taskID, method string, fn TaskFunc) {
	if taskID == "" || method == "" || fn == nil {
		panic("sdk: RegisterMethod needs a task id, a method and a function")
	}
	if method == FailMethod {
		panic("sdk: method " + FailMethod + " is reserved")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.methods == nil {
		r.methods = map[methodKey]TaskFunc{}
	}
	k := methodKey{taskID, method}
	if _, ok := r.methods[k]; ok {
		panic("sdk: method " + method + " of task " + taskID + " registered twice")
	}
	r.methods[k] = fn
}

// lookup returns the code to run for task name resumed at method ("" on a
// first run): the method registered for it, else the task's function; or a
// FailError saying what is missing.
func (r *Runtime) lookup(name, method string) (TaskFunc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if method != "" {
		if fn := r.methods[methodKey{name, method}]; fn != nil {
			return fn, nil
		}
	}
	if fn := r.tasks[name]; fn != nil {
		return fn, nil
	}
	if method != "" {
		return nil, Fail(fmt.Errorf("no method %q for task %q in this runtime", method, name))
	}
	return nil, Fail(fmt.Errorf("no task %q in this runtime", name))
}

// Main runs the task the worker asks for and exits the process: 0 once the
// outcome was reported, 1 when it could not be, 2 on bad arguments. The
// addresses come from the flags --comm and --logs, else from
// TASKWIRE_COMM_ADDR and TASKWIRE_LOGS_ADDR; the codec from --codec, else
// TASKWIRE_CODEC (msgpack by default). Main is the only function of the
// package that exits or reads the environment; it leaves signals alone, so
// the worker's SIGTERM ends the process.
func (r *Runtime) Main() {
	fs := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	comm := fs.String("comm", os.Getenv(EnvCommAddr), "worker's comm address (env "+EnvCommAddr+")")
	logs := fs.String("logs", os.Getenv(EnvLogsAddr), "worker's logs address (env "+EnvLogsAddr+")")
	codecName := fs.String("codec", os.Getenv(EnvCodec), "comm body codec, msgpack or json (env "+EnvCodec+")")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	codec, err := protocol.ParseCodec(*codecName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskwire sdk:", err)
		os.Exit(2)
	}
	if *comm == "" {
		fmt.Fprintln(os.Stderr, "taskwire sdk: no comm address: pass --comm or set "+EnvCommAddr)
		os.Exit(2)
	}
	r.Codec = codec
	if n := os.Getenv(protocol.EnvWarmTasks); n != "" {
		slots, err := strconv.Atoi(n)
		if err == nil {
			err = r.RunWarm(context.Background(), *comm, *logs, slots)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "taskwire sdk:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if err := r.Run(context.Background(), *comm, *logs); err != nil {
		fmt.Fprintln(os.Stderr, "taskwire sdk:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Run connects to the worker at commAddr (requests) and logsAddr (log
// lines; "" or unreachable means stderr), reads StartupDetails, runs the
// task it names (Context.Entrypoint, else TI.TaskID), and reports the
// outcome with one terminal message. A resumed task (NextMethod set) runs
// the method registered for it with RegisterMethod, else its Register'ed
// function; one resumed with FailMethod runs nothing and asks for a retry
// with the trigger's error. It returns nil once the worker has acknowledged
// that message, whatever the outcome, and an error when no outcome could be
// reported. A task with no code to run fails (with no retry). Cancelling ctx
// cancels the task's context.
func (r *Runtime) Run(ctx context.Context, commAddr, logsAddr string) error {
	dctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, DialTimeoutDefault)
		defer cancel()
	}
	lw := &logWriter{}
	if logsAddr != "" {
		lc, err := r.dial(dctx, logsAddr, protocol.LogStreamHeader{Secret: r.secret()}.MarshalLine())
		if err != nil {
			lw.err = err
			fmt.Fprintf(os.Stderr, "taskwire sdk: logs to stderr: %v\n", err)
		} else {
			defer lc.Close()
			lw.w = lc
		}
	}
	nc, err := r.dial(dctx, commAddr, protocol.AuthFrame(r.secret()))
	if err != nil {
		return fmt.Errorf("connect to the worker: %w", err)
	}
	return r.serve(ctx, nc, func(protocol.StartupDetails) (io.Writer, func()) { return lw, func() {} })
}

// secret is the secret the runtime presents to the worker.
func (r *Runtime) secret() string {
	if r.Secret != "" {
		return r.Secret
	}
	return os.Getenv(protocol.EnvCommSecret)
}

// dial connects to a worker address and writes hello (the auth frame or
// the log header) first.
func (r *Runtime) dial(ctx context.Context, addr string, hello []byte) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, Network(addr), addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// serve runs the task the worker names in StartupDetails on nc and reports
// its outcome. openLogs gives the task's log writer once StartupDetails is
// read, and what ends it before the connection is closed.
func (r *Runtime) serve(ctx context.Context, nc net.Conn, openLogs func(protocol.StartupDetails) (io.Writer, func())) error {
	defer nc.Close()
	// Closing the socket is the only way to stop a blocked read.
	stopClose := context.AfterFunc(ctx, func() { nc.Close() })
	defer stopClose()

	conn := protocol.NewConn(nc, r.Codec, 0)
	first, err := conn.ReadResponse()
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return fmt.Errorf("read StartupDetails: %w", err)
	}
	startup, ok := first.Msg.(protocol.StartupDetails)
	if !ok || first.ID != 0 {
		return fmt.Errorf("first frame from the worker is %s with id %d, want StartupDetails with id 0", typeName(first.Msg), first.ID)
	}
	lw, closeLogs := openLogs(startup)
	handler := newLogHandler(lw, r.LogLevel)
	sdkLog := slog.New(handler).With("logger", "taskwire.sdk")

	taskCtx, cancelTask := context.WithCancelCause(ctx)
	defer cancelTask(context.Canceled)
	cl := newClient(conn)
	go cl.readLoop(cancelTask)
	defer func() {
		nc.Close()
		<-cl.done
	}()
	defer closeLogs()

	t := &Task{startup: startup, client: cl, logger: slog.New(handler).With("logger", "task")}
	name := startup.Context.Entrypoint
	if name == "" {
		name = startup.TI.TaskID
	}
	var taskErr error
	method := startup.NextMethod
	if method == FailMethod {
		// The worker normally ends such a try itself; end it the same way.
		taskErr = errors.New(triggerFailedDefault)
		if s, ok := startup.NextKwargs["error"].(string); ok && s != "" {
			taskErr = errors.New(s)
		}
		sdkLog.Error("resumed after the trigger failed: not running the task", "task_id", name, "err", taskErr)
	} else if fn, err := r.lookup(name, method); err != nil {
		taskErr = err
		sdkLog.Error("no code to run", "task_id", name, "next_method", method, "err", err)
	} else {
		if method != "" {
			sdkLog.Debug("resuming", "task_id", name, "next_method", method)
		}
		taskErr = runTask(taskCtx, fn, t)
	}
	if t.isDeferred() {
		// DeferTask was the terminal message.
		if !errors.Is(taskErr, ErrDeferred) {
			sdkLog.Warn("task deferred, then returned something else: ignored", "task_id", name, "err", taskErr)
		}
		return nil
	}
	msg := terminal(taskErr)
	var pe *PanicError
	if errors.As(taskErr, &pe) {
		sdkLog.Error("task panicked", "task_id", name, "panic", fmt.Sprint(pe.Value), "stack", pe.Stack)
	}
	// The outcome is reported even when ctx is done: give it a moment of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RequestTimeoutDefault)
	defer cancel()
	closeLogs()
	if _, err := cl.call(sctx, msg); err != nil {
		return fmt.Errorf("report %s: %w", msg.MessageType(), err)
	}
	return nil
}

// runTask runs fn, recovering a panic into a *PanicError.
func runTask(ctx context.Context, fn TaskFunc, t *Task) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: string(debug.Stack())}
		}
	}()
	return fn(ctx, t)
}

// terminal returns the message that reports a TaskFunc's result.
func terminal(err error) protocol.Message {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var skip *SkipError
	var fail *FailError
	switch {
	case err == nil:
		return protocol.SucceedTask{EndDate: now}
	case errors.As(err, &skip):
		return protocol.TaskState{State: "skipped", EndDate: now, Reason: skip.Reason}
	case errors.As(err, &fail):
		return protocol.TaskState{State: "failed", EndDate: now, Reason: reason(err)}
	}
	return protocol.RetryTask{EndDate: now, Reason: reason(err)}
}

func reason(err error) string {
	s := err.Error()
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen] + "\n[truncated]"
	}
	return s
}

func typeName(m protocol.Message) string {
	if m == nil {
		return "nothing"
	}
	return m.MessageType()
}
