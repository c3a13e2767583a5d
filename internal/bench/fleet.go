package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/executor"
	"github.com/taskwire/taskwire/internal/logstorm"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/worker"
)

// The fleet phase: N simulated workers, each wired as cmd/worker wires a
// worker (its own NATS connection, Execution API client and registry
// heartbeat; the worker package's code, no fake), all in one child process
// (ModeFleet), against a fresh executor with embedded NATS in the bench
// process, so that the executor's CPU is the bench process's alone.

// ModeFleet runs RunFleetChild; only the bench binary has it.
const ModeFleet = "fleet"

// Lines ModeFleet writes on stdout.
const (
	// StatusStarted is written once every worker has started.
	StatusStarted = "started"
	// StatusStat, followed by the warnings and errors logged so far, the
	// CPU seconds used and the warning lines written (after the storm
	// limit, package logstorm), is written every fleetStatInterval.
	StatusStat = "stat "
)

const (
	fleetStatInterval = 500 * time.Millisecond
	fleetIdleWindow   = 10 * time.Second
	fleetListSamples  = 20
)

// fleetWorkerID is the id of simulated worker i.
func fleetWorkerID(i int) string { return fmt.Sprintf("fleet-%04d", i) }

// FleetChildConfig configures RunFleetChild.
type FleetChildConfig struct {
	NATSURL, APIURL string
	// Workers is the number of workers; each has Concurrency slots and
	// serves the command runtime's queue.
	Workers, Concurrency int
	// Logger receives the workers' logs (each record counts toward the
	// warnings when at level Warn or above); default one that discards.
	Logger *slog.Logger
	// Warnings, when set, receives the first fleetWarningsShown warnings.
	Warnings slog.Handler
}

// ParseFleetChildArgs parses ModeFleet's command line; the workers' first
// warnings, and with --log-level their logs, go to stderr.
func ParseFleetChildArgs(args []string, stderr io.Writer) (FleetChildConfig, error) {
	fs := flag.NewFlagSet("bench fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg FleetChildConfig
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "NATS URL")
	fs.StringVar(&cfg.APIURL, "api-url", "", "Execution API URL")
	fs.IntVar(&cfg.Workers, "workers", 0, "workers")
	fs.IntVar(&cfg.Concurrency, "concurrency", 1, "slots of each worker")
	logLevel := fs.String("log-level", "", "log the workers' lines at this level and above on stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *logLevel != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*logLevel)); err != nil {
			return cfg, fmt.Errorf("--log-level: %w", err)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	}
	cfg.Warnings = slog.NewTextHandler(stderr, nil)
	return cfg, nil
}

// countingHandler counts the records at level Warn and above.
type countingHandler struct {
	slog.Handler
	n    *atomic.Int64
	show slog.Handler // the first fleetWarningsShown go here too
}

// fleetWarningsShown is how many of the workers' warnings the fleet child
// writes on its stderr (the bench's), so that a count has its reasons.
const fleetWarningsShown = 10

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		if h.n.Add(1) <= fleetWarningsShown && h.show != nil {
			_ = h.show.Handle(ctx, r)
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var show slog.Handler
	if h.show != nil {
		show = h.show.WithAttrs(as)
	}
	return countingHandler{h.Handler.WithAttrs(as), h.n, show}
}

func (h countingHandler) WithGroup(g string) slog.Handler {
	var show slog.Handler
	if h.show != nil {
		show = h.show.WithGroup(g)
	}
	return countingHandler{h.Handler.WithGroup(g), h.n, show}
}

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

// RunFleetChild is ModeFleet: it starts cfg.Workers workers, writes
// StatusStarted, then StatusStat lines, and stops them when ctx is done
// or stdin ends (the bench is gone).
func RunFleetChild(ctx context.Context, cfg FleetChildConfig, stdin io.Reader, stdout io.Writer) (err error) {
	if cfg.NATSURL == "" || cfg.APIURL == "" || cfg.Workers < 1 || cfg.Concurrency < 1 {
		return fmt.Errorf("%w: fleet child needs NATS and API URLs, workers and concurrency", ErrConfig)
	}
	base := cfg.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	// Every warning is counted (warns), then limited as the binaries'
	// loggers limit a storm (flagenv.Log.Logger), and the lines that pass
	// are counted again (lines) and the first ones shown.
	var warns, lines atomic.Int64
	log := slog.New(countingHandler{logstorm.New(countingHandler{base.Handler(), &lines, cfg.Warnings}, logstorm.Config{}), &warns, nil})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()

	workers := make([]*worker.Worker, cfg.Workers)
	var conns sync.Map
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		g := new(errgroup.Group)
		g.SetLimit(64)
		for _, w := range workers {
			if w != nil {
				g.Go(func() error { return w.Stop(sctx) })
			}
		}
		err = errors.Join(err, g.Wait())
		conns.Range(func(_, v any) bool {
			v.(interface{ Close() }).Close()
			return true
		})
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range workers {
		g.Go(func() error {
			id := fleetWorkerID(i)
			// As cmd/worker connects: again with backoff while the server
			// cannot be reached (on a loaded machine the embedded server
			// accepts a thousand connections slowly: a 2 s dial timed out).
			nc, err := queue.ConnectRetry(gctx, queue.ConnConfig{URL: cfg.NATSURL, Name: "taskwire-worker", Logger: log}, fleetConnectTimeout)
			if err != nil {
				return err
			}
			conns.Store(i, nc)
			// Binding the streams and buckets is a dozen requests; on a
			// saturated machine one can time out (bind kv bucket xcom:
			// context deadline exceeded at load ≈ 48): a few more tries,
			// as a restarted worker would make.
			var q *queue.Client
			for attempt := 1; ; attempt++ {
				if q, err = queue.New(gctx, nc, queue.Config{Logger: log, Bind: true}); err == nil {
					break
				}
				if attempt == fleetBindAttempts || gctx.Err() != nil {
					return fmt.Errorf("worker %s: %w", id, err)
				}
				log.Warn("bind streams and buckets; again", "worker", id, "attempt", attempt, "err", err)
			}
			api, err := execution.NewClient(execution.ClientConfig{URL: cfg.APIURL, Logger: log})
			if err != nil {
				return err
			}
			w, err := worker.New(worker.Config{Queue: q, API: api, Queues: []string{queueCommand},
				Concurrency: cfg.Concurrency, ID: id, GracePeriod: 5 * time.Second, KillGrace: time.Second,
				Logger: log.With("worker", id)})
			if err != nil {
				return err
			}
			if err := w.Start(gctx); err != nil {
				return fmt.Errorf("start worker %s: %w", id, err)
			}
			workers[i] = w
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(stdout, StatusStarted); err != nil {
		return err
	}
	t := time.NewTicker(fleetStatInterval)
	defer t.Stop()
	for {
		if _, err := fmt.Fprintf(stdout, "%s%d %.3f %d\n", StatusStat, warns.Load(), processCPU().Seconds(), lines.Load()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Fleet is what the fleet phase measured at one size.
type Fleet struct {
	Workers int `json:"workers"`
	// ListedSeconds is from the fleet's start until GET /api/v1/workers
	// listed every worker live.
	ListedSeconds float64 `json:"listed_s"`
	// ListP50Millis and ListMaxMillis are the list's latency over
	// fleetListSamples calls while the workers heartbeat; ListShort counts
	// the calls that listed fewer than every worker.
	ListP50Millis float64 `json:"list_p50_ms"`
	ListMaxMillis float64 `json:"list_max_ms"`
	ListShort     int     `json:"list_short"`
	// ExecutorIdleCores is the CPU the bench process (executor and its
	// embedded NATS) used while the workers idled, in cores;
	// FleetIdleCores the workers' process.
	ExecutorIdleCores float64 `json:"executor_idle_cores"`
	FleetIdleCores    float64 `json:"fleet_idle_cores"`
	// ExecutorLoadCores is the same while Tasks no-op tasks ran.
	ExecutorLoadCores float64    `json:"executor_load_cores"`
	Throughput        Throughput `json:"throughput"`
	// DistinctWorkers is how many workers ran at least one of the tasks.
	DistinctWorkers int `json:"distinct_workers"`
	// Retried counts the tasks that needed more than one try.
	Retried int `json:"retried"`
	// MaxStartSeconds is the longest time a task waited from queued to
	// its (last) try's start; LateStarts counts those that waited
	// fleetLateStart or more (a delivery lost until its ack wait ran out
	// would wait 30 s).
	MaxStartSeconds float64 `json:"max_start_s"`
	LateStarts      int     `json:"late_starts"`
	// Redelivered is how many activities the queue's consumer delivered
	// again (its deliveries beyond one per try): a delivery a worker lost
	// comes back after the ack wait (30 s), the late start of issue 17.
	Redelivered int64 `json:"redelivered"`
	// WarningsIdle are the warnings and errors the workers logged while
	// idle; Warnings in the whole phase.
	WarningsIdle int64 `json:"warnings_idle"`
	Warnings     int64 `json:"warnings"`
	// WarningLines is how many lines those warnings took in the workers'
	// log once a storm of one warning is limited (package logstorm: ten
	// of a kind per 10 s, then one with the count).
	WarningLines int64 `json:"warning_lines"`
}

// FleetTasks is how many tasks the fleet phase runs on n workers at
// least: each task goes to whichever worker's pull the server serves
// first, and idle workers renew their pull every FetchMaxWait (1 s),
// which reorders the server's queue of waiting pulls far faster than
// tasks come (1,000 renewals/s against ≈ 30–150 tasks/s), so a task's
// worker is close to a uniform draw: after t tasks a worker has run none
// with probability e^(−t/n) (3 tasks each left ≈ 5% unused: 39 and 29 of
// 1,000 in two runs). n·ln(100·n) tasks leave fewer than 0.01 workers
// unused expected.
func FleetTasks(n int) int { return int(math.Ceil(float64(n) * math.Log(100*float64(n)))) }

// fleetLateStart is the wait from queued to start that Fleet.LateStarts
// counts.
const fleetLateStart = 10 * time.Second

// fleetChild is the running fleet process and its last stat line.
type fleetChild struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started chan struct{}
	// done is closed once the child has exited, err then set: a channel
	// closed, not a value sent, because both the phase (a child that
	// ended early) and stop wait on it; a value read by the first left
	// stop waiting forever (the hang of a fleet child that could not
	// connect its thousand workers on a loaded machine).
	done  chan struct{}
	err   error
	warns atomic.Int64
	lines atomic.Int64
	cpu   atomic.Int64 // microseconds
}

func startFleetChild(ctx context.Context, cfg Config, c *cluster, n int) (*fleetChild, error) {
	cmd := exec.CommandContext(ctx, cfg.Self, "--nats-url", c.emb.ClientURL(), "--api-url", c.url,
		"--workers", strconv.Itoa(n), "--concurrency", strconv.Itoa(cfg.FleetConcurrency))
	cmd.Env = append(os.Environ(), EnvMode+"="+ModeFleet)
	cmd.Stderr = os.Stderr
	return runFleetChild(cmd)
}

// runFleetChild starts cmd as the fleet child and follows its stat lines.
func runFleetChild(cmd *exec.Cmd) (*fleetChild, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// The child's stdout is a pipe of our own, not exec's: Wait then
	// returns when the child has exited, even if a process it started
	// still holds the pipe (with exec's, reading to its end could wait
	// forever: a stop that hung once).
	stdout, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = pw
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = stdout.Close()
		return nil, fmt.Errorf("start fleet child: %w", err)
	}
	f := &fleetChild{cmd: cmd, stdin: stdin, started: make(chan struct{}), done: make(chan struct{})}
	scanned := make(chan struct{})
	go func() {
		err := cmd.Wait()
		select {
		case <-scanned:
		case <-time.After(fleetPipeGrace):
		}
		_ = stdout.Close()
		<-scanned
		f.err = err
		close(f.done)
	}()
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == StatusStarted:
				close(f.started)
			case strings.HasPrefix(line, StatusStat):
				var w, l int64
				var cpu float64
				if _, err := fmt.Sscanf(strings.TrimPrefix(line, StatusStat), "%d %f %d", &w, &cpu, &l); err == nil {
					f.warns.Store(w)
					f.lines.Store(l)
					f.cpu.Store(int64(cpu * 1e6))
				}
			}
		}
	}()
	return f, nil
}

// fleetPipeGrace is how long after the fleet child's exit its last
// stdout lines are waited for.
const fleetPipeGrace = time.Second

// fleetBindAttempts is how many times a simulated worker tries to bind
// the streams and buckets.
const fleetBindAttempts = 5

// fleetConnectTimeout bounds a simulated worker's connection attempts.
const fleetConnectTimeout = 2 * time.Minute

// stop ends the child (it stops its workers when stdin closes).
func (f *fleetChild) stop() error {
	_ = f.stdin.Close()
	select {
	case <-f.done:
		return f.err
	case <-time.After(time.Minute):
		_ = f.cmd.Process.Kill()
		<-f.done
		return errors.Join(errors.New("fleet child did not stop within a minute"), f.err)
	}
}

func (f *fleetChild) cpuTime() time.Duration { return time.Duration(f.cpu.Load()) * time.Microsecond }

// fleet runs the fleet phase at n workers on a cluster of its own.
func fleet(ctx context.Context, cfg Config, dir string, n int, prog *progress) (r Fleet, err error) {
	r.Workers = n
	ccfg := cfg
	ccfg.Workers = 0
	prog.set(fmt.Sprintf("fleet of %d: starting", n), 0, nil)
	c, err := startCluster(ctx, ccfg, dir)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := c.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	begin := time.Now()
	f, err := startFleetChild(ctx, cfg, c, n)
	if err != nil {
		return r, err
	}
	defer func() {
		if serr := f.stop(); serr != nil && err == nil {
			err = fmt.Errorf("fleet child: %w", serr)
		}
	}()
	var listed atomic.Int64
	prog.set(fmt.Sprintf("fleet of %d: listed", n), n, func() int { return int(listed.Load()) })
	live := func() (int, time.Duration, error) {
		t0 := time.Now()
		ws, err := c.api.Workers(ctx)
		d := time.Since(t0)
		if err != nil {
			return 0, d, err
		}
		k := 0
		for _, w := range ws {
			if w.State == activity.MemberLive && strings.HasPrefix(w.ID, "fleet-") {
				k++
			}
		}
		return k, d, nil
	}
	for {
		k, _, err := live()
		if err != nil {
			return r, fmt.Errorf("list workers: %w", err)
		}
		listed.Store(int64(k))
		if k == n {
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-f.done:
			return r, fmt.Errorf("fleet child ended: %w", f.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	r.ListedSeconds = time.Since(begin).Seconds()
	select {
	case <-f.started:
	case <-ctx.Done():
		return r, ctx.Err()
	}

	// Idle: the workers heartbeat and keep their pulls waiting.
	prog.set(fmt.Sprintf("fleet of %d: idle", n), 0, nil)
	time.Sleep(2 * fleetStatInterval) // settle: the last starts' traffic
	w0, e0, f0, t0 := f.warns.Load(), processCPU(), f.cpuTime(), time.Now()
	var lat []time.Duration
	for time.Since(t0) < fleetIdleWindow {
		if len(lat) < fleetListSamples {
			k, d, err := live()
			if err != nil {
				return r, fmt.Errorf("list workers: %w", err)
			}
			lat = append(lat, d)
			if k != n {
				r.ListShort++
			}
		}
		time.Sleep(fleetIdleWindow / fleetListSamples)
	}
	time.Sleep(fleetStatInterval + 100*time.Millisecond) // the child's stat of the window's end
	wall := time.Since(t0)
	r.ExecutorIdleCores = (processCPU() - e0).Seconds() / wall.Seconds()
	r.FleetIdleCores = (f.cpuTime() - f0).Seconds() / wall.Seconds()
	r.WarningsIdle = f.warns.Load() - w0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.ListP50Millis = ms(lat[len(lat)/2])
	r.ListMaxMillis = ms(lat[len(lat)-1])

	// Load: enough tasks for every worker to get some (FleetTasks).
	tasks := max(cfg.Tasks, FleetTasks(n))
	base := c.tracker.ended.Load()
	prog.set(fmt.Sprintf("fleet of %d: %d tasks", n, tasks), tasks, func() int { return int(c.tracker.ended.Load() - base) })
	e1, t1 := processCPU(), time.Now()
	// Retried (and counted) rather than fatal: on a machine saturated by
	// a thousand workers a try can miss its heartbeats (with 2 retries,
	// one of 11,513 tasks missed them on all 3 tries at load ≈ 35).
	spec := commandSpec(cfg.TaskBin, ModeNoop, "")
	spec.RetryPolicy = activity.RetryPolicy{Retries: 5, Delay: activity.Duration(100 * time.Millisecond)}
	if r.Throughput, err = throughput(ctx, c, spec, tasks, cfg.Inflight); err != nil {
		return r, err
	}
	r.ExecutorLoadCores = (processCPU() - e1).Seconds() / time.Since(t1).Seconds()
	// Every task has ended in the bucket (the tracker's watch saw it);
	// the executor's memory may lag it by a moment: wait until it holds no
	// unfinished record, so the list below reads every end.
	for deadline := time.Now().Add(10 * time.Second); ; {
		page, err := c.ex.List(ctx, executor.Filter{Limit: 1})
		if err != nil {
			return r, err
		}
		if len(page.TIs) == 0 || page.TIs[0].State.Terminal() || time.Now().After(deadline) {
			break // unfinished records are listed first
		}
		time.Sleep(10 * time.Millisecond)
	}
	used := map[string]bool{}
	seen := map[string]bool{}
	tries := int64(0)
	for f := (executor.Filter{}); ; {
		page, err := c.ex.List(ctx, f)
		if err != nil {
			return r, err
		}
		for _, ti := range page.TIs {
			if seen[ti.ID] {
				continue // a list over a changing set may repeat one
			}
			seen[ti.ID] = true
			if ti.State == activity.StateSuccess && ti.WorkerID != "" {
				used[ti.WorkerID] = true
			}
			if ti.TryNumber > 1 {
				r.Retried++
			}
			tries += int64(ti.TryNumber)
			if ti.QueuedAt != nil && ti.StartDate != nil {
				w := ti.StartDate.Sub(*ti.QueuedAt)
				r.MaxStartSeconds = max(r.MaxStartSeconds, w.Seconds())
				if w >= fleetLateStart {
					r.LateStarts++
				}
			}
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	cons, err := c.observer.ActivityConsumer(ctx, queueCommand)
	if err != nil {
		return r, err
	}
	delivered, err := cons.Deliveries(ctx)
	if err != nil {
		return r, err
	}
	r.Redelivered = int64(delivered) - tries
	r.DistinctWorkers = len(used)
	r.Warnings = f.warns.Load()
	r.WarningLines = f.lines.Load()
	return r, nil
}

// fleets runs the fleet phase at each of cfg.Fleet.
func fleets(ctx context.Context, cfg Config, dir string, prog *progress) ([]Fleet, error) {
	var out []Fleet
	for i, n := range cfg.Fleet {
		fdir := filepath.Join(dir, fmt.Sprintf("fleet-%d", i))
		if err := os.MkdirAll(fdir, 0o755); err != nil {
			return nil, err
		}
		r, err := fleet(ctx, cfg, fdir, n, prog)
		if rerr := os.RemoveAll(fdir); rerr != nil && err == nil {
			err = rerr
		}
		if err != nil {
			return nil, fmt.Errorf("fleet of %d workers: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}
