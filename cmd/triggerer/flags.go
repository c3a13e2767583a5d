package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/taskwire/taskwire/internal/flagenv"
	"github.com/taskwire/taskwire/triggerer"
)

const usage = `usage: triggerer [flags]

Runs the triggers of deferred tasks, up to --capacity at once. Run several
for high availability: when one stops, the others take its triggers over.
Every flag falls back to the TASKWIRE_* environment variable named in its help.
`

type options struct {
	apiURL string
	apiCA  string
	nats   flagenv.NATS
	logs   flagenv.Log
	listen string
	cfg    triggerer.Config
	log    *slog.Logger
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("triggerer", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	o := &options{}
	o.nats.Register(fs, "nats://127.0.0.1:4222", "NATS URL")
	o.nats.RegisterConnectTimeout(fs)
	fs.IntVar(&o.cfg.Capacity, "capacity", triggerer.CapacityDefault, "most triggers held at once (TASKWIRE_CAPACITY)")
	fs.StringVar(&o.cfg.ID, "id", "", "triggerer id, [A-Za-z0-9_=-]; default hostname-pid-random (TASKWIRE_TRIGGERER_ID)")
	fs.DurationVar(&o.cfg.HeartbeatInterval, "heartbeat-interval", triggerer.HeartbeatIntervalDefault, "heartbeat interval (TASKWIRE_HEARTBEAT_INTERVAL)")
	fs.DurationVar(&o.cfg.DeadAfter, "dead-after", triggerer.DeadAfterDefault, "silence after which another triggerer's triggers are taken over (TASKWIRE_DEAD_AFTER)")
	fs.StringVar(&o.listen, "listen", "", "HOST:PORT serving /metrics, /healthz and /readyz; empty for none (TASKWIRE_LISTEN)")
	pyTriggers := fs.String("python-triggers", "", "command of the Python trigger runtime running Airflow trigger classes, split on spaces, e.g. \".venv-airflow/bin/python -m taskwire.airflow_triggers\"; empty for none (TASKWIRE_PYTHON_TRIGGERS)")
	fs.StringVar(&o.apiURL, "api-url", "", "executor URL serving the Execution API, through which the Python trigger runtime's triggers read connections, variables and XComs; empty for none (TASKWIRE_API_URL)")
	fs.StringVar(&o.apiCA, "api-ca", "", "PEM file of the CA that signed the executor's https certificate (TASKWIRE_API_CA)")
	o.logs.Register(fs)
	if err := flagenv.Parse(fs, args, os.LookupEnv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.cfg.PythonTriggers = strings.Fields(*pyTriggers)
	if o.cfg.Capacity <= 0 {
		return nil, fmt.Errorf("--capacity %d: want at least 1", o.cfg.Capacity)
	}
	var err error
	if o.log, err = o.logs.Logger(); err != nil {
		return nil, err
	}
	return o, nil
}

// logEffective logs the configuration in use, without secrets.
func (o *options) logEffective(id string) {
	c := o.cfg
	o.log.Info("triggerer config", append([]any{"triggerer_id", id}, append(o.nats.LogAttrs(), "capacity", c.Capacity, "heartbeat_interval", c.HeartbeatInterval, "dead_after", c.DeadAfter, "listen", o.listen, "api_url", o.apiURL)...)...)
}
