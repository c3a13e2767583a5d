package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/queue"
)

// Defaults of Config.
const (
	ConcurrencyDefault       = 4
	HeartbeatIntervalDefault = 5 * time.Second
	GracePeriodDefault       = 30 * time.Second
	KillGraceDefault         = 5 * time.Second
	HandshakeTimeoutDefault  = 30 * time.Second
	FetchMaxWaitDefault      = time.Second
	// ReportTimeoutDefault bounds reporting a final state (with the client's
	// own retries) so that Stop is bounded even when the executor is down.
	ReportTimeoutDefault = 30 * time.Second
)

// Placeholders substituted in Runtime.Command arguments.
const (
	PlaceholderCommAddr = "{comm_addr}"
	PlaceholderLogsAddr = "{logs_addr}"
)

// Runtime is the language runtime ("coordinator") that runs a queue's tasks.
type Runtime struct {
	// Command starts an SDK runtime. "{comm_addr}" and "{logs_addr}" are
	// substituted in each argument with the loopback addresses the worker
	// listens on; they are also in TASKWIRE_COMM_ADDR and TASKWIRE_LOGS_ADDR.
	// Empty means the "command" runtime: the activity's Entrypoint.Command is
	// run directly, with no protocol.
	Command []string
	// Codec of the task protocol's frame bodies; default msgpack.
	Codec protocol.Codec
	// Env is added to the runtime's environment.
	Env map[string]string
	// Dir is the runtime's working directory; default the worker's.
	Dir string
	// Socket is how the runtime reaches the worker: SocketTCP (default),
	// loopback ports "127.0.0.1:PORT", or SocketUnix, unix sockets in a
	// per-try directory, given as absolute paths.
	Socket string
	// Warm, when set, runs the queue's tasks in warm processes of this
	// runtime, each serving many tasks (see the package documentation);
	// nil is cold mode, a process per try.
	Warm *Warm
	// Airflow, when set, makes this the "airflow" runtime: Command starts
	// the taskwire.airflow_runtime shim, which runs Airflow's own task
	// runner (apache-airflow-task-sdk) on the comm socket, and the worker
	// speaks Airflow's dialect of the protocol (airflow.go). Codec must be
	// msgpack and Warm nil.
	Airflow *AirflowRuntime
	// Prefork, when set, starts the queue's task processes as children of
	// a pre-forked runtime process, its zygote (see Prefork): the airflow
	// runtime's, or the command runtime's "python -m MODULE" commands.
	Prefork *Prefork
}

// AirflowRuntime configures the "airflow" runtime.
type AirflowRuntime struct {
	// Python is the interpreter of an environment with the pinned
	// apache-airflow-task-sdk and the taskwire Python SDK; default python3.
	Python string
	// DagsFolder is the DAG folder: Airflow's "dags-folder" bundle, which the
	// runner parses. A task of DAG D is looked for in D.py there, else in
	// every file of the folder. Required, an existing directory.
	DagsFolder string
}

// airflowShim is the module the airflow runtime runs.
const airflowShim = "taskwire.airflow_runtime"

// AirflowCommand returns the command of the airflow runtime: the shim run
// by python.
func AirflowCommand(python string) []string {
	if python == "" {
		python = "python3"
	}
	return []string{python, "-m", airflowShim}
}

// Runtime sockets.
const (
	SocketTCP  = "tcp"
	SocketUnix = "unix"
)

// sdk reports whether r is an SDK runtime (one that speaks the protocol).
func (r Runtime) sdk() bool { return len(r.Command) > 0 }

// Config configures a Worker. The zero value of every optional field means
// its default.
type Config struct {
	// Queue is the JetStream client activities are pulled from and logs
	// pushed to. Required.
	Queue *queue.Client
	// API is the Execution API client. Required.
	API *execution.Client
	// Queues are the queues served. Required; each must pass
	// activity.ValidateQueue.
	Queues []string
	// Concurrency is the number of slots: tasks (and callbacks) run at once,
	// shared by all queues. Default 4.
	Concurrency int
	// Runtimes maps a queue to its runtime; a queue with none uses the
	// command runtime, unless RequireRuntimes.
	Runtimes map[string]Runtime
	// RequireRuntimes refuses a served queue with no entry in Runtimes (a
	// runtime file lists every queue; the zero Runtime is the command
	// runtime).
	RequireRuntimes bool
	// Hostname reported to the executor; default os.Hostname().
	Hostname string
	// ID is the worker's id; default hostname-pid-random.
	ID string
	// HeartbeatInterval between heartbeats of each running task, and of the
	// worker's registry entry; default 5s.
	HeartbeatInterval time.Duration
	// GracePeriod is how long Stop lets running tasks finish before it kills
	// them and reports them up_for_retry; default 30s.
	GracePeriod time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL of a task's process
	// group; default 5s.
	KillGrace time.Duration
	// HandshakeTimeout is how long an SDK runtime has to connect to the comm
	// address; default 30s.
	HandshakeTimeout time.Duration
	// FetchMaxWait is how long one pull request waits for messages before it
	// is renewed; messages are handed over as soon as they arrive, so this
	// only bounds how long an idle pull holds its slots, and how long Stop
	// waits for the pull under way to end (the server ends it, so that no
	// message is delivered after the worker stopped listening). Default 1s.
	FetchMaxWait time.Duration
	// StateDir, when set, records the process group of every running task so
	// that a restarted worker kills the orphans of one that was SIGKILLed.
	// Only one worker may use a StateDir at a time.
	StateDir string
	// Version is reported in the worker registry; default the binary's
	// module version from its build info.
	Version string
	// Services are helper processes run beside the tasks (see Service):
	// started by Start, restarted when they exit, stopped by Stop after
	// the tasks.
	Services []Service
	// Metrics, when set, counts tasks, durations and heartbeats.
	Metrics *Metrics
	// Logger for the worker's own logs; default slog.Default().
	Logger *slog.Logger
}

// ErrConfig is matched by every configuration error of New.
var ErrConfig = errors.New("invalid worker config")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// WithDefaults returns c with defaults applied.
func (c Config) WithDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if c.ID == "" {
		c.ID = fmt.Sprintf("%s-%d-%s", c.Hostname, os.Getpid(), randomSuffix())
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if c.GracePeriod <= 0 {
		c.GracePeriod = GracePeriodDefault
	}
	if c.KillGrace <= 0 {
		c.KillGrace = KillGraceDefault
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = HandshakeTimeoutDefault
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = FetchMaxWaitDefault
	}
	if c.Version == "" {
		c.Version = buildVersion()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if c.Queue == nil {
		return configErr("Queue (the JetStream client) is required")
	}
	if c.API == nil {
		return configErr("API (the Execution API client) is required")
	}
	if len(c.Queues) == 0 {
		return configErr("at least one queue is required")
	}
	if err := queue.ValidWorkerID(c.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	seen := map[string]bool{}
	for _, q := range c.Queues {
		if err := activity.ValidateQueue(q); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if seen[q] {
			return configErr("queue %q listed twice", q)
		}
		seen[q] = true
		if _, ok := c.Runtimes[q]; c.RequireRuntimes && !ok {
			return configErr("queue %q has no runtime: give it one (runtime: command for plain executables)", q)
		}
	}
	for q, rt := range c.Runtimes {
		if !seen[q] {
			return configErr("runtime for queue %q, which is not served", q)
		}
		if err := rt.validate(); err != nil {
			return fmt.Errorf("%w: queue %q: %w", ErrConfig, q, err)
		}
	}
	names := map[string]bool{}
	for _, svc := range c.Services {
		if err := svc.validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if names[svc.Name] {
			return configErr("service %q listed twice", svc.Name)
		}
		names[svc.Name] = true
	}
	if c.FetchMaxWait < 100*time.Millisecond {
		return configErr("FetchMaxWait %s is below 100ms", c.FetchMaxWait)
	}
	return nil
}

func (r Runtime) validate() error {
	if !r.sdk() {
		if r.Codec != protocol.CodecMsgpack || len(r.Env) > 0 || r.Dir != "" || r.Socket != "" || r.Warm != nil {
			return errors.New("runtime has codec, env, dir, socket or warm but no command")
		}
		if r.Prefork != nil {
			if len(r.Prefork.Modules) == 0 {
				return errors.New("prefork of the command runtime needs modules (the python -m modules run forked)")
			}
			return r.Prefork.validate()
		}
		return nil
	}
	if r.Prefork != nil {
		if r.Airflow == nil {
			return errors.New("prefork is for runtime: airflow and runtime: command (an SDK runtime serves many tasks with warm instead)")
		}
		if err := r.Prefork.validate(); err != nil {
			return err
		}
	}
	if r.Airflow != nil {
		if r.Warm != nil || r.Codec != protocol.CodecMsgpack {
			return errors.New("runtime airflow takes no warm and no codec (Airflow's runner speaks msgpack)")
		}
		if st, err := os.Stat(r.Airflow.DagsFolder); r.Airflow.DagsFolder == "" || err != nil || !st.IsDir() {
			return fmt.Errorf("runtime airflow: dags_folder %q is not a directory", r.Airflow.DagsFolder)
		}
	}
	if r.Warm != nil {
		if err := r.Warm.validate(); err != nil {
			return fmt.Errorf("warm: %w", err)
		}
	}
	if r.Socket != "" && r.Socket != SocketTCP && r.Socket != SocketUnix {
		return fmt.Errorf("socket %q: want %s or %s", r.Socket, SocketTCP, SocketUnix)
	}
	if strings.TrimSpace(r.Command[0]) == "" {
		return errors.New("runtime command has an empty program")
	}
	if r.Codec != protocol.CodecMsgpack && r.Codec != protocol.CodecJSON {
		return fmt.Errorf("unknown codec %d", r.Codec)
	}
	for k := range r.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("bad env name %q", k)
		}
	}
	if r.Dir != "" {
		if st, err := os.Stat(r.Dir); err != nil || !st.IsDir() {
			return fmt.Errorf("runtime dir %q is not a directory", r.Dir)
		}
	}
	if _, err := lookPath(r.Command[0], r.Dir); err != nil {
		return fmt.Errorf("runtime command: %w", err)
	}
	return nil
}
