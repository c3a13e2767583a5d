package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/taskwire/taskwire/triggerer"
)

const usage = `usage: triggerer [flags]

Runs the triggers of deferred tasks, up to --capacity at once. Run several
for high availability: when one stops, the others take its triggers over.
Every flag falls back to the TASKWIRE_* environment variable named in its help.
`

type options struct {
	natsURL, natsUser, natsPassword, natsCreds string
	natsCA, natsCert, natsKey                  string
	listen                                     string
	cfg                                        triggerer.Config
	log                                        *slog.Logger
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("triggerer", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	o := &options{}
	fs.StringVar(&o.natsURL, "nats-url", env("TASKWIRE_NATS_URL", "nats://127.0.0.1:4222"), "NATS URL (TASKWIRE_NATS_URL)")
	fs.StringVar(&o.natsUser, "nats-user", env("TASKWIRE_NATS_USER", ""), "NATS user (TASKWIRE_NATS_USER)")
	fs.StringVar(&o.natsPassword, "nats-password", env("TASKWIRE_NATS_PASSWORD", ""), "NATS password (TASKWIRE_NATS_PASSWORD)")
	fs.StringVar(&o.natsCreds, "nats-creds", env("TASKWIRE_NATS_CREDS", ""), "NATS creds file (TASKWIRE_NATS_CREDS)")
	fs.StringVar(&o.natsCA, "nats-tls-ca", env("TASKWIRE_NATS_TLS_CA", ""), "NATS TLS CA file (TASKWIRE_NATS_TLS_CA)")
	fs.StringVar(&o.natsCert, "nats-tls-cert", env("TASKWIRE_NATS_TLS_CERT", ""), "NATS TLS client cert (TASKWIRE_NATS_TLS_CERT)")
	fs.StringVar(&o.natsKey, "nats-tls-key", env("TASKWIRE_NATS_TLS_KEY", ""), "NATS TLS client key (TASKWIRE_NATS_TLS_KEY)")
	fs.IntVar(&o.cfg.Capacity, "capacity", envInt("TASKWIRE_CAPACITY", triggerer.CapacityDefault), "most triggers held at once (TASKWIRE_CAPACITY)")
	fs.StringVar(&o.cfg.ID, "id", env("TASKWIRE_TRIGGERER_ID", ""), "triggerer id, [A-Za-z0-9_=-]; default hostname-pid-random (TASKWIRE_TRIGGERER_ID)")
	fs.DurationVar(&o.cfg.HeartbeatInterval, "heartbeat-interval", envDuration("TASKWIRE_HEARTBEAT_INTERVAL", triggerer.HeartbeatIntervalDefault), "heartbeat interval (TASKWIRE_HEARTBEAT_INTERVAL)")
	fs.DurationVar(&o.cfg.DeadAfter, "dead-after", envDuration("TASKWIRE_DEAD_AFTER", triggerer.DeadAfterDefault), "silence after which another triggerer's triggers are taken over (TASKWIRE_DEAD_AFTER)")
	fs.StringVar(&o.listen, "listen", env("TASKWIRE_LISTEN", ""), "HOST:PORT serving /metrics and /healthz; empty for none (TASKWIRE_LISTEN)")
	logLevel := fs.String("log-level", env("TASKWIRE_LOG_LEVEL", "info"), "debug, info, warn or error (TASKWIRE_LOG_LEVEL)")
	logFormat := fs.String("log-format", env("TASKWIRE_LOG_FORMAT", "text"), "text or json (TASKWIRE_LOG_FORMAT)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.cfg.Capacity <= 0 {
		return nil, fmt.Errorf("--capacity %d: want at least 1", o.cfg.Capacity)
	}
	var err error
	if o.log, err = newLogger(*logLevel, *logFormat); err != nil {
		return nil, err
	}
	return o, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// logEffective logs the configuration in use, without secrets.
func (o *options) logEffective(id string) {
	c := o.cfg
	o.log.Info("triggerer config", "triggerer_id", id, "nats_url", o.natsURL, "nats_user", o.natsUser,
		"nats_password", o.natsPassword != "", "nats_creds", o.natsCreds, "nats_tls", o.natsCA != "" || o.natsCert != "",
		"capacity", c.Capacity, "heartbeat_interval", c.HeartbeatInterval, "dead_after", c.DeadAfter, "listen", o.listen)
}
