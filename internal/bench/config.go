package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taskwire/taskwire/internal/benchtask"
)

// Defaults of Config's fields.
const (
	TasksDefault        = 1000
	ConcurrencyDefault  = 8
	WorkersDefault      = 1
	InflightDefault     = 16
	DagRoundsDefault    = 3
	LatencyTasksDefault = 200
	DeferralsDefault    = 200
	LateTimersDefault   = 10_000
	LateSpreadDefault   = 5 * time.Second
	SamplesDefault      = 300
	QueuesDefault       = 100
	BacklogDefault      = 1_000_000
)

// TimersDefault are the timer counts the triggerer is measured at.
var TimersDefault = []int{10_000, 100_000}

// Child modes: the value of EnvMode in a re-executed bench binary or in the
// task binary (see package internal/benchtask).
const (
	EnvMode     = benchtask.EnvMode
	EnvStampDir = benchtask.EnvStampDir
	ModeNoop    = benchtask.ModeNoop
	ModeSDK     = benchtask.ModeSDK
	ModeDefer   = benchtask.ModeDefer
	// ModeTriggerer runs a triggerer against a NATS server (see
	// RunTriggererChild); only the bench binary has it.
	ModeTriggerer = "triggerer"
)

// Config configures Run. The zero value of every field means its default.
type Config struct {
	// Self is the bench binary, re-executed for the triggerer child; its
	// main must honour EnvMode. Default os.Executable().
	Self string
	// TaskBin is the binary run as the task processes and the Go SDK
	// runtime, in ModeNoop, ModeDefer and ModeSDK: cmd/bench/taskbin, whose
	// start costs what a small Go binary's does. Default Self, which
	// handles those modes too but starts slower (it links the whole
	// cluster); the report says which was used.
	TaskBin string
	// Tasks is the number of no-op tasks of each throughput phase (command
	// and Go SDK). Default TasksDefault.
	Tasks int
	// Concurrency is each worker's slots. Default ConcurrencyDefault.
	Concurrency int
	// Workers is the number of in-process workers. Default WorkersDefault.
	Workers int
	// Inflight bounds the Submit calls in flight in the throughput phases.
	// Default InflightDefault.
	Inflight int
	// LatencyTasks is the number of tasks whose dispatch latency is
	// measured, one at a time, after a few not counted. Default
	// LatencyTasksDefault.
	LatencyTasks int
	// Deferrals is the number of deferral round trips measured, one at a
	// time, after a few not counted. Default DeferralsDefault.
	Deferrals int
	// Timers are the numbers of timers the triggerer is measured holding.
	// Default TimersDefault.
	Timers []int
	// LateTimers is the number of timers, due over LateSpread, whose
	// lateness is measured while the triggerer holds each of Timers.
	// Default LateTimersDefault.
	LateTimers int
	// LateSpread is the time over which the LateTimers are due. Default
	// LateSpreadDefault.
	LateSpread time.Duration
	// Queues is the number of queues the many-queues phase spreads its
	// Tasks over, all served by one worker. Default QueuesDefault.
	Queues int
	// Backlog is the number of activities left pending on a queue nobody
	// serves while the command throughput phase runs again. Default
	// BacklogDefault.
	Backlog int
	// Samples is the number of samples of each raw limit. Default
	// SamplesDefault.
	Samples int
	// Fleet are the numbers of simulated workers the fleet phase runs
	// (see fleet.go), e.g. 100 and 1,000; none by default (1,000 workers
	// take about a minute to start on 2 cores).
	Fleet []int
	// FleetConcurrency is each simulated worker's slots; default 1.
	FleetConcurrency int
	// FleetOnly runs the fleet phase alone.
	FleetOnly bool
	// Records are the numbers of finished task-instance records the
	// records phase starts an executor on (see records.go), ascending;
	// none by default.
	Records []int
	// RecordsOnly runs the records phase alone.
	RecordsOnly bool
	// SleepersOnly runs the sleepers phase alone (on a cluster of its own).
	SleepersOnly bool
	// WarmOnly runs the raw limits, the dispatch latency and the flat
	// command phase (what the warm figures are compared with), then the
	// warm phases (and the sleepers), and stops: no pool, DAG, cold Go SDK,
	// deferral, many-queues, backlog or timer phase.
	WarmOnly bool
	// DagOnly stops after the DAG-run phases (the raw limits, dispatch
	// latency and flat command throughput they are compared with run
	// first).
	DagOnly bool
	// DagRounds is how often the fan-out/fan-in DAG runs, each time next
	// to a flat phase of as many command tasks. Default DagRoundsDefault.
	DagRounds int
	// PoolOnly runs the pool phase alone (pool.go), after the JetStream
	// round trip it is compared with.
	PoolOnly bool
	// PoolRounds is how often the pool phase runs a pooled and a flat
	// command phase; default 1 (its flat phase is the command phase), 3
	// with PoolOnly.
	PoolRounds int
	// Python, when set, is a python interpreter with which the warm phase
	// also runs Python SDK tasks; PythonPath is put in its PYTHONPATH (the
	// checkout's sdk/python/src, so the SDK of this tree is measured).
	Python     string
	PythonPath string
	// JavaSDKJar, when set, is the Java SDK's jar with which the warm phase
	// also runs Java SDK tasks (java on $PATH).
	JavaSDKJar string
	// Airflow, when set, is the python of a venv with the pinned Airflow
	// and the taskwire Python SDK (.venv-airflow/bin/python): the Airflow
	// phase (airflow.go) runs, alone.
	Airflow string
	// AirflowTasks is the number of tasks of each Airflow phase row;
	// default 10.
	AirflowTasks int
	// Sleepers, when > 0, runs the sleepers phase: that many async def
	// Python tasks, each awaiting SleepFor, at once on one worker (needs
	// Python).
	Sleepers int
	// SleepFor is each sleeper's wait; default 5s.
	SleepFor time.Duration
	// TempDir is where the run's temporary directory is made (and removed);
	// default os.TempDir().
	TempDir string
	// Progress, when set, receives a progress line redrawn in place (a
	// terminal).
	Progress io.Writer
	// Logger receives the cluster's logs; default a logger that discards
	// them.
	Logger *slog.Logger
	// OnThroughput, when set, is called as each throughput phase starts
	// (with the phase's name, e.g. "warm Go SDK tasks"); the function it
	// returns is called as the phase ends. cmd/bench's --cpuprofile-phase
	// profiles one phase with it.
	OnThroughput func(phase string) (end func())
}

// ErrConfig is wrapped by the error of an invalid Config.
var ErrConfig = errors.New("invalid bench config")

// WithDefaults returns the config with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Self == "" {
		if self, err := os.Executable(); err == nil {
			c.Self = self
		}
	}
	if c.TaskBin == "" {
		c.TaskBin = c.Self
	}
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&c.Tasks, TasksDefault)
	def(&c.Concurrency, ConcurrencyDefault)
	def(&c.Workers, WorkersDefault)
	def(&c.Inflight, InflightDefault)
	def(&c.DagRounds, DagRoundsDefault)
	if c.PoolRounds <= 0 {
		c.PoolRounds = 1
		if c.PoolOnly {
			c.PoolRounds = 3
		}
	}
	def(&c.LatencyTasks, LatencyTasksDefault)
	def(&c.Deferrals, DeferralsDefault)
	def(&c.LateTimers, LateTimersDefault)
	def(&c.Samples, SamplesDefault)
	def(&c.Queues, QueuesDefault)
	def(&c.Backlog, BacklogDefault)
	def(&c.FleetConcurrency, 1)
	if len(c.Timers) == 0 {
		c.Timers = TimersDefault
	}
	if c.LateSpread == 0 {
		c.LateSpread = LateSpreadDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Airflow != "" && strings.Contains(c.Airflow, "/") {
		if abs, err := filepath.Abs(c.Airflow); err == nil {
			c.Airflow = abs
		}
	}
	if c.AirflowTasks == 0 {
		c.AirflowTasks = 10
	}
	if c.SleepFor == 0 {
		c.SleepFor = 5 * time.Second
	}
	return c
}

func (c Config) validate() error {
	if c.Self == "" {
		return fmt.Errorf("%w: no bench binary to re-execute", ErrConfig)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"tasks", c.Tasks}, {"concurrency", c.Concurrency}, {"workers", c.Workers},
		{"inflight", c.Inflight}, {"dag rounds", c.DagRounds}, {"latency tasks", c.LatencyTasks}, {"deferrals", c.Deferrals},
		{"late timers", c.LateTimers}, {"samples", c.Samples}, {"queues", c.Queues}, {"backlog", c.Backlog},
	} {
		if f.v < 1 {
			return fmt.Errorf("%w: %s %d: want at least 1", ErrConfig, f.name, f.v)
		}
	}
	for _, n := range c.Fleet {
		if n < 1 {
			return fmt.Errorf("%w: fleet %d: want at least 1 worker", ErrConfig, n)
		}
	}
	for i, n := range c.Records {
		if n < 1 || i > 0 && n <= c.Records[i-1] {
			return fmt.Errorf("%w: records %v: want ascending numbers of at least 1", ErrConfig, c.Records)
		}
	}
	if c.SleepersOnly && (c.Sleepers == 0 || c.FleetOnly || c.RecordsOnly || c.DagOnly) {
		return fmt.Errorf("%w: sleepers only needs --sleepers and no other -only flag", ErrConfig)
	}
	if c.RecordsOnly && len(c.Records) == 0 {
		return fmt.Errorf("%w: records only, but no number of records", ErrConfig)
	}
	if c.WarmOnly && (c.DagOnly || c.FleetOnly || c.RecordsOnly || c.SleepersOnly || c.PoolOnly) {
		return fmt.Errorf("%w: --warm-only and another -only flag exclude each other", ErrConfig)
	}
	if c.PoolOnly && (c.FleetOnly || c.RecordsOnly || c.DagOnly || c.SleepersOnly) {
		return fmt.Errorf("%w: --pool-only excludes the other -only flags", ErrConfig)
	}
	if c.FleetOnly && c.DagOnly {
		return errors.New("bench: --fleet-only and --dag-only exclude each other")
	}
	if c.FleetOnly && len(c.Fleet) == 0 {
		return fmt.Errorf("%w: fleet only, but no fleet size", ErrConfig)
	}
	for _, n := range c.Timers {
		if n < 1 {
			return fmt.Errorf("%w: timers %d: want at least 1", ErrConfig, n)
		}
	}
	if c.AirflowTasks < 0 {
		return fmt.Errorf("%w: airflow tasks %d: want non-negative", ErrConfig, c.AirflowTasks)
	}
	if c.Sleepers < 0 || c.SleepFor < 0 {
		return fmt.Errorf("%w: sleepers %d for %s: want non-negative", ErrConfig, c.Sleepers, c.SleepFor)
	}
	if c.Sleepers > 0 && c.Python == "" {
		return fmt.Errorf("%w: the sleepers phase runs Python tasks: it needs a python", ErrConfig)
	}
	if c.LateSpread < 0 {
		return fmt.Errorf("%w: late spread %s is negative", ErrConfig, c.LateSpread)
	}
	return nil
}

// warmup is the number of runs not counted before n measured ones.
func warmup(n int) int { return min(10, n/10+1) }
