package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/taskwire/taskwire/internal/flagenv"
	"github.com/taskwire/taskwire/protocol"
	"github.com/taskwire/taskwire/worker"
)

const usage = `usage: worker [flags]

Pulls activities from the given queues and supervises their tasks.
Every flag falls back to the TASKWIRE_* environment variable named in its help.

A queue's runtime is set with --runtime QUEUE=COMMAND (repeatable), COMMAND
split on spaces, with {comm_addr} and {logs_addr} placeholders, e.g.
  --runtime 'go=./bin/gotasks --comm {comm_addr} --logs {logs_addr}'
A queue without one runs entrypoint commands directly.

Or give every queue's runtime in a YAML file with --config FILE (see the
worker package's RuntimeFile): the worker then serves the file's queues (or
--queues, each of which must be in the file) and refuses a queue without a
runtime.
`

type options struct {
	nats             flagenv.NATS
	logs             flagenv.Log
	apiURL, apiCA    string
	listen           string
	cfg              worker.Config
	log              *slog.Logger
	runtimes, codecs []string
	configFile       string
}

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ";") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func splitEnv(name, sep string) listFlag {
	var l listFlag
	for _, v := range strings.Split(os.Getenv(name), sep) {
		if v = strings.TrimSpace(v); v != "" {
			l = append(l, v)
		}
	}
	return l
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	o := &options{}
	o.nats.Register(fs, "nats://127.0.0.1:4222", "NATS URL")
	o.nats.RegisterConnectTimeout(fs)
	fs.StringVar(&o.apiURL, "api-url", "http://127.0.0.1:8080", "executor URL serving the Execution API (TASKWIRE_API_URL)")
	fs.StringVar(&o.apiCA, "api-ca", "", "PEM file of the CA that signed the executor's https certificate (TASKWIRE_API_CA)")
	queues := fs.String("queues", "default", "comma-separated queues to serve (TASKWIRE_QUEUES)")
	fs.IntVar(&o.cfg.Concurrency, "concurrency", worker.ConcurrencyDefault, "tasks run at once (TASKWIRE_CONCURRENCY)")
	rts, codecs := splitEnv("TASKWIRE_RUNTIMES", ";"), splitEnv("TASKWIRE_RUNTIME_CODECS", ",")
	fs.Var(&rts, "runtime", "QUEUE=COMMAND, repeatable (TASKWIRE_RUNTIMES, ';'-separated)")
	fs.StringVar(&o.configFile, "config", "", "YAML file giving each queue's runtime (TASKWIRE_WORKER_CONFIG)")
	fs.Var(&codecs, "runtime-codec", "QUEUE=json|msgpack, repeatable (TASKWIRE_RUNTIME_CODECS, ','-separated)")
	fs.DurationVar(&o.cfg.HeartbeatInterval, "heartbeat-interval", worker.HeartbeatIntervalDefault, "task heartbeat interval (TASKWIRE_HEARTBEAT_INTERVAL)")
	fs.DurationVar(&o.cfg.GracePeriod, "grace-period", worker.GracePeriodDefault, "on shutdown, time running tasks get to finish (TASKWIRE_GRACE_PERIOD)")
	fs.DurationVar(&o.cfg.KillGrace, "kill-grace", worker.KillGraceDefault, "SIGTERM to SIGKILL delay for a task's processes (TASKWIRE_KILL_GRACE)")
	fs.DurationVar(&o.cfg.HandshakeTimeout, "handshake-timeout", worker.HandshakeTimeoutDefault, "time an SDK runtime has to connect (TASKWIRE_HANDSHAKE_TIMEOUT)")
	fs.StringVar(&o.cfg.StateDir, "state-dir", "", "directory recording running tasks' process groups, to kill orphans after a crash (TASKWIRE_STATE_DIR)")
	fs.StringVar(&o.cfg.ID, "worker-id", "", "worker id; default hostname-pid-random (TASKWIRE_WORKER_ID)")
	fs.StringVar(&o.cfg.Hostname, "hostname", "", "hostname reported to the executor; default the host's (TASKWIRE_HOSTNAME)")
	fs.StringVar(&o.listen, "listen", "", "HOST:PORT serving /metrics, /healthz and /readyz; empty for none (TASKWIRE_LISTEN)")
	o.logs.Register(fs)
	if err := flagenv.Parse(fs, args, os.LookupEnv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.log, err = o.logs.Logger(); err != nil {
		return nil, err
	}
	queuesGiven := flagenv.Given(fs)["queues"] // by flag or TASKWIRE_QUEUES
	if queuesGiven || o.configFile == "" {
		for _, q := range strings.Split(*queues, ",") {
			if q = strings.TrimSpace(q); q != "" {
				o.cfg.Queues = append(o.cfg.Queues, q)
			}
		}
	}
	o.runtimes, o.codecs = rts, codecs
	if o.configFile != "" {
		if len(rts) > 0 || len(codecs) > 0 {
			return nil, fmt.Errorf("--config and --runtime/--runtime-codec: give the runtimes one way")
		}
		data, err := os.ReadFile(o.configFile)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		f, err := worker.ParseRuntimeFile(data)
		if err != nil {
			return nil, fmt.Errorf("--config %s: %w", o.configFile, err)
		}
		o.cfg.Runtimes, o.cfg.RequireRuntimes = f.Queues, true
		o.cfg.Services = f.Services
		if !queuesGiven {
			for q := range f.Queues {
				o.cfg.Queues = append(o.cfg.Queues, q)
			}
			slices.Sort(o.cfg.Queues)
		} else {
			// Serve only the queues asked for; the file may hold more.
			for q := range o.cfg.Runtimes {
				if !slices.Contains(o.cfg.Queues, q) {
					delete(o.cfg.Runtimes, q)
				}
			}
		}
		return o, nil
	}
	if o.cfg.Runtimes, err = parseRuntimes(rts, codecs); err != nil {
		return nil, err
	}
	return o, nil
}

// parseRuntimes turns QUEUE=COMMAND and QUEUE=CODEC flags into runtimes.
func parseRuntimes(rts, codecs []string) (map[string]worker.Runtime, error) {
	out := map[string]worker.Runtime{}
	for _, s := range rts {
		q, cmd, ok := strings.Cut(s, "=")
		argv := strings.Fields(cmd)
		if !ok || strings.TrimSpace(q) == "" || len(argv) == 0 {
			return nil, fmt.Errorf("--runtime %q: want QUEUE=COMMAND", s)
		}
		q = strings.TrimSpace(q)
		if _, dup := out[q]; dup {
			return nil, fmt.Errorf("--runtime: queue %q given twice", q)
		}
		out[q] = worker.Runtime{Command: argv}
	}
	for _, s := range codecs {
		q, name, ok := strings.Cut(s, "=")
		q = strings.TrimSpace(q)
		rt, known := out[q]
		if !ok || !known {
			return nil, fmt.Errorf("--runtime-codec %q: want QUEUE=json|msgpack for a queue with a --runtime", s)
		}
		c, err := protocol.ParseCodec(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("--runtime-codec %q: %w", s, err)
		}
		rt.Codec = c
		out[q] = rt
	}
	return out, nil
}

// serviceNames are the names of the worker's services (their commands and
// environments may hold secrets).
func serviceNames(svcs []worker.Service) []string {
	names := make([]string, 0, len(svcs))
	for _, s := range svcs {
		names = append(names, s.Name)
	}
	return names
}

// logEffective logs the configuration in use, without secrets.
func (o *options) logEffective(id string) {
	c := o.cfg
	o.log.Info("worker config", append([]any{"worker_id", id}, append(o.nats.LogAttrs(), "api_url", o.apiURL, "api_ca", o.apiCA, "queues", c.Queues, "concurrency", c.Concurrency,
		"runtimes", o.runtimes, "runtime_codecs", o.codecs, "services", serviceNames(c.Services),
		"heartbeat_interval", c.HeartbeatInterval, "grace_period", c.GracePeriod, "kill_grace", c.KillGrace,
		"handshake_timeout", c.HandshakeTimeout, "state_dir", c.StateDir, "listen", o.listen)...)...)
}
