package triggerer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// Defaults for [Config].
const (
	CapacityDefault          = 1000
	HeartbeatIntervalDefault = 5 * time.Second
	// DeadAfterDefault is how long a triggerer may go without a heartbeat
	// before the others take its triggers: with the heartbeat interval
	// and one adoption pass, its triggers run again within about 20s
	// (Airflow's threshold is 30s).
	DeadAfterDefault      = 15 * time.Second
	PublishWorkersDefault = 8
	fetchBatchMax         = 256
	claimConcurrency      = 64
	fetchWait             = time.Second
)

// Config configures [New]. The zero value of each field means its default.
type Config struct {
	// Queue is the JetStream client (required).
	Queue *queue.Client
	// ID names this triggerer in claims and heartbeats; default
	// <hostname>-<pid>-<random>.
	ID string
	// Capacity is the most triggers held at once. Default 1000.
	Capacity int
	// HeartbeatInterval is how often the heartbeat is written and orphaned
	// triggers are looked for. Default 5s.
	HeartbeatInterval time.Duration
	// DeadAfter is how long another triggerer's heartbeat may be silent
	// before its triggers are taken over. Default 15s.
	DeadAfter time.Duration
	// PublishWorkers bounds the goroutines publishing fired events.
	// Default 8.
	PublishWorkers int
	// HTTPClient is used by "http" triggers; default http.DefaultClient.
	HTTPClient *http.Client
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Metrics, when set, is updated as triggers come and go.
	Metrics *Metrics
	// PythonTriggers is the command of the Python trigger runtime that
	// runs "airflow" triggers (Airflow trigger classes), e.g.
	// [.venv-airflow/bin/python, -m, taskwire.airflow_triggers]; it is
	// started at the first such trigger. Empty: such triggers fail.
	PythonTriggers []string
	// API is the Execution API through which the Python trigger runtime's
	// triggers read connections, variables and XComs (with the trigger
	// token each trigger comes with). Nil: their reads fail, and Airflow's
	// secrets backends fall back to the others (environment variables).
	API *execution.Client
}

// WithDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) WithDefaults() Config {
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = CapacityDefault
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = HeartbeatIntervalDefault
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DeadAfterDefault
	}
	if cfg.PublishWorkers <= 0 {
		cfg.PublishWorkers = PublishWorkersDefault
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

func (cfg Config) validate() error {
	if cfg.Queue == nil {
		return errors.New("triggerer: Config.Queue is required")
	}
	if err := validKey(cfg.ID); err != nil {
		return fmt.Errorf("triggerer: id %q: %w", cfg.ID, err)
	}
	if cfg.DeadAfter <= cfg.HeartbeatInterval {
		return fmt.Errorf("triggerer: dead-after %s must exceed the heartbeat interval %s", cfg.DeadAfter, cfg.HeartbeatInterval)
	}
	return nil
}

func validKey(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '='
		if !ok {
			return fmt.Errorf("character %q: use [A-Za-z0-9_=-]", r)
		}
	}
	return nil
}
