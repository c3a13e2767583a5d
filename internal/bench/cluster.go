package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/taskwire/taskwire/client"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/executor"
	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/triggerer"
	"github.com/taskwire/taskwire/worker"
)

// Queues the bench's workers serve.
const (
	queueCommand = "default" // the command runtime
	queueGo      = "go"      // the Go SDK runtime: the bench binary in ModeSDK
	queueRaw     = "benchraw"
)

// stopTimeout bounds the cluster's shutdown.
const stopTimeout = 30 * time.Second

// cluster is an embedded NATS server, an executor serving HTTP on a
// loopback port, workers and a triggerer, all in this process, each with
// its own NATS connection as if they were processes; plus an observer
// connection for the bench's own reads (the tracker, raw JetStream).
type cluster struct {
	log  *slog.Logger
	emb  *queue.Embedded
	conn []*queue.Conn

	ex      *executor.Executor
	srv     *http.Server
	srvDone chan error
	url     string // the executor's
	workers []*worker.Worker
	trig    *triggerer.Triggerer

	observer *queue.Client
	tracker  *tracker
	api      *client.Client
	httpc    []*http.Client // to close idle connections at the end

	// The warm Python and Java runtimes' programs, under the run's
	// directory; "" when the run has no such runtime.
	pyScript, javaSource string
	// The Airflow phase's DAG folder and AIRFLOW_HOME (airflow.go).
	airflowDags, airflowHome string
}

// startCluster starts the cluster, its data under dir; on error, what was
// started is stopped.
func startCluster(ctx context.Context, cfg Config, dir string) (_ *cluster, err error) {
	c := &cluster{log: cfg.Logger}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop())
		}
	}()
	c.emb, err = queue.StartEmbedded(queue.EmbeddedConfig{
		Host: "127.0.0.1", Port: -1, DataDir: filepath.Join(dir, "nats"), Logger: c.log.With("component", "nats"),
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}

	// The executor, wired as cmd/executor's serve wires it.
	exq, err := c.connect(ctx, "taskwire-executor")
	if err != nil {
		return nil, err
	}
	c.ex, err = executor.New(executor.Config{Queue: exq, Logger: c.log.With("component", "executor")})
	if err != nil {
		return nil, err
	}
	if err := c.ex.Start(ctx); err != nil {
		return nil, fmt.Errorf("start executor: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	url := "http://" + ln.Addr().String()
	c.srv = &http.Server{Handler: c.ex.Handler(), ReadHeaderTimeout: executor.HTTPReadHeaderTimeout, IdleTimeout: executor.HTTPIdleTimeout}
	c.srvDone = make(chan error, 1)
	go func() {
		err := c.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		c.srvDone <- err
	}()

	c.url = url
	queues := []string{queueCommand, queueGo, queueGoWarm}
	if cfg.Python != "" {
		c.pyScript = filepath.Join(dir, "bench_warm.py")
		if err := os.WriteFile(c.pyScript, []byte(pyWarmScript), 0o644); err != nil {
			return nil, err
		}
		queues = append(queues, queuePyWarm)
	}
	if cfg.JavaSDKJar != "" {
		c.javaSource = filepath.Join(dir, "BenchWarm.java")
		if err := os.WriteFile(c.javaSource, []byte(javaWarmSource), 0o644); err != nil {
			return nil, err
		}
		queues = append(queues, queueJavaWarm)
	}
	for i := range cfg.Workers {
		w, err := c.startWorker(ctx, cfg, fmt.Sprintf("bench-worker-%d", i), queues)
		if err != nil {
			return nil, err
		}
		c.workers = append(c.workers, w)
	}

	// The triggerer, wired as cmd/triggerer wires it (without metrics).
	tq, err := c.connect(ctx, "taskwire-triggerer")
	if err != nil {
		return nil, err
	}
	c.trig, err = triggerer.New(triggerer.Config{Queue: tq, ID: "bench-triggerer", Logger: c.log.With("component", "triggerer")})
	if err != nil {
		return nil, err
	}
	if err := c.trig.Start(ctx); err != nil {
		c.trig = nil
		return nil, fmt.Errorf("start triggerer: %w", err)
	}

	// The bench's own view: submissions through the public API, outcomes
	// from a watch of the task_instances bucket.
	if c.observer, err = c.connect(ctx, "taskwire-bench"); err != nil {
		return nil, err
	}
	if c.tracker, err = startTracker(ctx, c.observer.Bucket(queue.BucketTaskInstances)); err != nil {
		return nil, err
	}
	hc := c.httpClient(cfg.Inflight)
	c.api, err = client.New(client.Config{URL: url, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// startWorker starts a worker, wired as cmd/worker wires it, serving
// queues: queueGo with the Go SDK runtime (the task binary in ModeSDK),
// the others with the command runtime. The caller stops it.
func (c *cluster) startWorker(ctx context.Context, cfg Config, id string, queues []string) (*worker.Worker, error) {
	wq, err := c.connect(ctx, "taskwire-worker")
	if err != nil {
		return nil, err
	}
	hc := c.httpClient(256) // as execution.NewClient's default
	api, err := execution.NewClient(execution.ClientConfig{URL: c.url, HTTPClient: hc, Logger: c.log.With("component", "execution-client")})
	if err != nil {
		return nil, err
	}
	runtimes := map[string]worker.Runtime{}
	if slices.Contains(queues, queueGo) {
		runtimes[queueGo] = worker.Runtime{
			Command: []string{cfg.TaskBin, "--comm", worker.PlaceholderCommAddr, "--logs", worker.PlaceholderLogsAddr},
			Env:     childEnv(ModeSDK),
		}
	}
	if slices.Contains(queues, queueGoWarm) {
		runtimes[queueGoWarm] = worker.Runtime{
			Command: []string{cfg.TaskBin, "--comm", worker.PlaceholderCommAddr, "--logs", worker.PlaceholderLogsAddr},
			Env:     childEnv(ModeSDK),
			Warm:    &worker.Warm{Processes: 1, TasksPerProcess: cfg.Concurrency},
		}
	}
	warm := &worker.Warm{Processes: 1, TasksPerProcess: cfg.Concurrency}
	pyEnv := map[string]string{"PYTHONDONTWRITEBYTECODE": "1"}
	if cfg.PythonPath != "" {
		pyEnv["PYTHONPATH"] = cfg.PythonPath
	}
	if slices.Contains(queues, queuePyWarm) {
		runtimes[queuePyWarm] = worker.Runtime{Command: []string{cfg.Python, c.pyScript, "--comm", worker.PlaceholderCommAddr,
			"--logs", worker.PlaceholderLogsAddr}, Env: pyEnv, Warm: warm}
	}
	if slices.Contains(queues, queueJavaWarm) {
		runtimes[queueJavaWarm] = worker.Runtime{Command: []string{"java", "-XX:+UseSerialGC", "-cp", cfg.JavaSDKJar, c.javaSource,
			"--comm", worker.PlaceholderCommAddr, "--logs", worker.PlaceholderLogsAddr}, Codec: protocol.CodecJSON, Warm: warm}
	}
	if slices.Contains(queues, queuePyCold) {
		runtimes[queuePyCold] = worker.Runtime{Command: []string{cfg.Python, c.pyScript, "--comm", worker.PlaceholderCommAddr,
			"--logs", worker.PlaceholderLogsAddr}, Env: pyEnv}
	}
	for _, q := range []string{queueAirflowCold, queueAirflowPrefork} {
		if !slices.Contains(queues, q) {
			continue
		}
		env := map[string]string{"AIRFLOW_HOME": c.airflowHome, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONDONTWRITEBYTECODE": "1"}
		if cfg.PythonPath != "" {
			env["PYTHONPATH"] = cfg.PythonPath
		}
		rt := worker.Runtime{Command: worker.AirflowCommand(cfg.Airflow), Env: env,
			Airflow: &worker.AirflowRuntime{Python: cfg.Airflow, DagsFolder: c.airflowDags}}
		if q == queueAirflowPrefork {
			rt.Prefork = &worker.Prefork{}
		}
		runtimes[q] = rt
	}
	concurrency := cfg.Concurrency
	if slices.Contains(queues, queueSleepers) {
		concurrency = cfg.Sleepers
		runtimes[queueSleepers] = worker.Runtime{Command: []string{cfg.Python, c.pyScript, "--comm", worker.PlaceholderCommAddr,
			"--logs", worker.PlaceholderLogsAddr}, Env: pyEnv, Warm: &worker.Warm{Processes: 1, TasksPerProcess: cfg.Sleepers}}
	}
	w, err := worker.New(worker.Config{
		Queue: wq, API: api, Queues: queues, Concurrency: concurrency, Runtimes: runtimes,
		ID:          id,
		GracePeriod: 5 * time.Second, KillGrace: time.Second,
		Logger: c.log.With("component", "worker", "worker", id),
	})
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", id, err)
	}
	return w, nil
}

// benchLimits are the storage limits of every queue client of the bench
// (each one provisions the streams, so they must agree): the backlog phase
// leaves a million activities in ACTIVITIES, beyond the default share of
// the budget a queue stream has, so the work-queue streams are unbounded.
var benchLimits = queue.Limits{Queue: -1}

// connect opens a NATS connection of its own and a queue client on it.
func (c *cluster) connect(ctx context.Context, name string) (*queue.Client, error) {
	nc, err := queue.Connect(ctx, queue.ConnConfig{URL: c.emb.ClientURL(), Name: name, Logger: c.log})
	if err != nil {
		return nil, err
	}
	c.conn = append(c.conn, nc)
	q, err := queue.New(ctx, nc, queue.Config{Logger: c.log, Limits: benchLimits})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return q, nil
}

// httpClient is an HTTP client of its own keeping up to idle connections
// to the executor; stop closes them.
func (c *cluster) httpClient(idle int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = idle
	t.IdleConnTimeout = execution.IdleConnTimeoutDefault // below the server's (executor.HTTPReadHeaderTimeout)
	hc := &http.Client{Transport: t}
	c.httpc = append(c.httpc, hc)
	return hc
}

// stop stops what was started, in the reverse order, within stopTimeout.
func (c *cluster) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	var errs []error
	for _, w := range c.workers {
		if err := w.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop worker: %w", err))
		}
	}
	if c.trig != nil {
		if err := c.trig.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop triggerer: %w", err))
		}
	}
	if c.tracker != nil {
		c.tracker.stop()
	}
	if c.srv != nil {
		if err := c.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop http: %w", err))
		}
		if err := <-c.srvDone; err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	if c.ex != nil {
		if err := c.ex.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop executor: %w", err))
		}
	}
	for _, hc := range c.httpc {
		hc.CloseIdleConnections()
	}
	for _, nc := range c.conn {
		nc.Close()
	}
	if c.emb != nil {
		c.emb.Shutdown()
	}
	return errors.Join(errs...)
}
