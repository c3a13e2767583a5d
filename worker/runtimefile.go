package worker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/taskwire/taskwire/protocol"
)

// RuntimeFile is a worker's runtime file (YAML): the runtime of each queue
// it serves.
//
//	queues:
//	  default:
//	    runtime: command            # plain executables, no protocol
//	  go:
//	    command: ./bin/gotasks --comm {comm_addr} --logs {logs_addr}
//	  python:
//	    command: [python3, tasks.py, --comm, "{comm_addr}", --logs, "{logs_addr}"]
//	    codec: json                 # msgpack (default) or json
//	    env: {PYTHONUNBUFFERED: "1"}
//	    dir: /srv/tasks
//	    socket: unix                # tcp (default) or unix
//	  go-warm:
//	    command: ./bin/gotasks
//	    warm:                       # warm mode: processes started ahead, reused
//	      processes: 2              # default 1
//	      tasks_per_process: 4      # at once in one process; default 1
//	      max_tasks: 1000           # recycle after this many; default no limit
//	      max_rss: 512MiB           # recycle above; bytes, KiB, MiB or GiB
//	      idle_timeout: 10m         # stop after idling this long; default never
//	  airflow:
//	    runtime: airflow            # Airflow's own task runner (see AirflowRuntime)
//	    python: .venv-airflow/bin/python   # default python3
//	    dags_folder: /srv/dags      # required
//	    env: {AIRFLOW_HOME: /srv/airflow}
//	    prefork: {}                 # fork each task from a zygote that imported Airflow's runner (Prefork)
//	  airflow-executor:
//	    runtime: command            # the TaskwireExecutor's workloads: python3 -m taskwire_airflow.run
//	    prefork:
//	      python: /srv/venv-airflow/bin/python
//	      preload: [taskwire_airflow.run:preload, taskwire.airflow_runtime:preload]   # "module" or "module:function"
//	      modules: [taskwire_airflow.run]           # python -m commands run forked
//	      env: {AIRFLOW_HOME: /srv/airflow}
//	      restart_delay: 1s         # first wait before a restart; doubles up to 30s
//	      ready_timeout: 2m         # bound of the zygote's imports
//	      spare: 2                  # children forked ahead, each waiting for its task (default 0)
//
//	services:                     # helper processes beside the tasks (Service)
//	  forkserver:
//	    command: [python3, -m, forkserver, --socket, /run/forkserver.sock]
//	    env: {AIRFLOW_HOME: /srv/airflow}
//	    dir: /srv/airflow
//	    restart_delay: 1s         # first wait before a restart; default 1s
//
// A command given as a string is split on spaces; give a list to keep
// spaces in an argument.
type RuntimeFile struct {
	Queues map[string]Runtime
	// Services, by name.
	Services []Service
}

type runtimeFileYAML struct {
	Queues   map[string]runtimeYAML `yaml:"queues"`
	Services map[string]serviceYAML `yaml:"services"`
}

type serviceYAML struct {
	Command      yaml.Node         `yaml:"command"`
	Env          map[string]string `yaml:"env"`
	Dir          string            `yaml:"dir"`
	RestartDelay string            `yaml:"restart_delay"`
}

func (y serviceYAML) service(name string) (Service, error) {
	argv, err := commandArgv(y.Command)
	if err != nil {
		return Service{}, err
	}
	s := Service{Name: name, Command: argv, Env: y.Env, Dir: y.Dir}
	if y.RestartDelay != "" {
		if s.RestartDelay, err = time.ParseDuration(y.RestartDelay); err != nil {
			return Service{}, fmt.Errorf("restart_delay: %w", err)
		}
	}
	return s, s.validate()
}

// commandArgv is a command given as a string (split on spaces) or a list.
func commandArgv(n yaml.Node) ([]string, error) {
	var argv []string
	switch n.Kind {
	case 0:
	case yaml.ScalarNode:
		argv = strings.Fields(n.Value)
	case yaml.SequenceNode:
		if err := n.Decode(&argv); err != nil {
			return nil, fmt.Errorf("command: %w", err)
		}
	default:
		return nil, errors.New("command: want a string or a list of strings")
	}
	return argv, nil
}

type runtimeYAML struct {
	Runtime string            `yaml:"runtime"`
	Command yaml.Node         `yaml:"command"`
	Codec   string            `yaml:"codec"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	Socket  string            `yaml:"socket"`
	Warm    *warmYAML         `yaml:"warm"`
	// runtime: airflow
	Python     string `yaml:"python"`
	DagsFolder string `yaml:"dags_folder"`
	// runtime: airflow or command
	Prefork *preforkYAML `yaml:"prefork"`
}

type preforkYAML struct {
	Python       string            `yaml:"python"`
	Preload      []string          `yaml:"preload"`
	Modules      []string          `yaml:"modules"`
	Env          map[string]string `yaml:"env"`
	Dir          string            `yaml:"dir"`
	RestartDelay string            `yaml:"restart_delay"`
	ReadyTimeout string            `yaml:"ready_timeout"`
	Spare        int               `yaml:"spare"`
}

func (y *preforkYAML) prefork() (*Prefork, error) {
	if y == nil {
		return nil, nil
	}
	p := &Prefork{Python: y.Python, Preload: y.Preload, Modules: y.Modules, Env: y.Env, Dir: y.Dir, Spare: y.Spare}
	var err error
	if y.RestartDelay != "" {
		if p.RestartDelay, err = time.ParseDuration(y.RestartDelay); err != nil {
			return nil, fmt.Errorf("prefork: restart_delay: %w", err)
		}
	}
	if y.ReadyTimeout != "" {
		if p.ReadyTimeout, err = time.ParseDuration(y.ReadyTimeout); err != nil {
			return nil, fmt.Errorf("prefork: ready_timeout: %w", err)
		}
	}
	return p, p.validate()
}

type warmYAML struct {
	Processes       int    `yaml:"processes"`
	TasksPerProcess int    `yaml:"tasks_per_process"`
	MaxTasks        int    `yaml:"max_tasks"`
	MaxRSS          string `yaml:"max_rss"`
	IdleTimeout     string `yaml:"idle_timeout"`
}

func (y warmYAML) warm() (*Warm, error) {
	w := &Warm{Processes: y.Processes, TasksPerProcess: y.TasksPerProcess, MaxTasks: y.MaxTasks}
	if y.MaxRSS != "" {
		n, err := parseBytes(y.MaxRSS)
		if err != nil {
			return nil, fmt.Errorf("warm: max_rss: %w", err)
		}
		w.MaxRSS = n
	}
	if y.IdleTimeout != "" {
		d, err := time.ParseDuration(y.IdleTimeout)
		if err != nil {
			return nil, fmt.Errorf("warm: idle_timeout: %w", err)
		}
		w.IdleTimeout = d
	}
	if err := w.validate(); err != nil {
		return nil, fmt.Errorf("warm: %w", err)
	}
	return w, nil
}

// parseBytes reads a size: a number of bytes, or one followed by KiB, MiB
// or GiB.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a size like 512MiB", s)
	}
	return n * mult, nil
}

// ParseRuntimeFile decodes a runtime file, refusing unknown fields and
// queues without a runtime.
func ParseRuntimeFile(data []byte) (*RuntimeFile, error) {
	var raw runtimeFileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: runtime file: %w", ErrConfig, err)
	}
	if len(raw.Queues) == 0 {
		return nil, configErr("runtime file: no queues")
	}
	names := make([]string, 0, len(raw.Queues))
	for q := range raw.Queues {
		names = append(names, q)
	}
	sort.Strings(names)
	out := &RuntimeFile{Queues: make(map[string]Runtime, len(raw.Queues))}
	for _, q := range names {
		rt, err := raw.Queues[q].runtime()
		if err != nil {
			return nil, fmt.Errorf("%w: runtime file: queue %q: %w", ErrConfig, q, err)
		}
		out.Queues[q] = rt
	}
	svcNames := make([]string, 0, len(raw.Services))
	for n := range raw.Services {
		svcNames = append(svcNames, n)
	}
	sort.Strings(svcNames)
	for _, n := range svcNames {
		svc, err := raw.Services[n].service(n)
		if err != nil {
			return nil, fmt.Errorf("%w: runtime file: service %q: %w", ErrConfig, n, err)
		}
		out.Services = append(out.Services, svc)
	}
	return out, nil
}

func (y runtimeYAML) runtime() (Runtime, error) {
	argv, err := commandArgv(y.Command)
	if err != nil {
		return Runtime{}, err
	}
	if y.Runtime != "airflow" && (y.Python != "" || y.DagsFolder != "") {
		return Runtime{}, errors.New("python and dags_folder are for runtime: airflow")
	}
	pf, err := y.Prefork.prefork()
	if err != nil {
		return Runtime{}, err
	}
	if pf != nil && y.Runtime != "airflow" && y.Runtime != "command" {
		return Runtime{}, errors.New("prefork is for runtime: airflow and runtime: command (an SDK runtime serves many tasks with warm instead)")
	}
	switch y.Runtime {
	case "airflow":
		if len(argv) > 0 || y.Codec != "" || y.Warm != nil {
			return Runtime{}, errors.New("runtime: airflow takes no command, codec or warm (it runs Airflow's task runner through taskwire's shim)")
		}
		if y.DagsFolder == "" {
			return Runtime{}, errors.New("runtime: airflow needs dags_folder")
		}
		return Runtime{Command: AirflowCommand(y.Python), Env: y.Env, Dir: y.Dir, Socket: y.Socket,
			Airflow: &AirflowRuntime{Python: y.Python, DagsFolder: y.DagsFolder}, Prefork: pf}, nil
	case "command":
		if len(argv) > 0 || y.Codec != "" || len(y.Env) > 0 || y.Dir != "" || y.Socket != "" || y.Warm != nil {
			return Runtime{}, errors.New("runtime: command takes no command, codec, env, dir, socket or warm (the activity names the executable)")
		}
		if pf != nil && len(pf.Modules) == 0 {
			return Runtime{}, errors.New("prefork of runtime: command needs modules (the python -m modules whose commands run forked)")
		}
		return Runtime{Prefork: pf}, nil
	case "", "sdk":
	default:
		return Runtime{}, fmt.Errorf("runtime %q: want command, airflow, or sdk (the default) with a command", y.Runtime)
	}
	if len(argv) == 0 {
		return Runtime{}, errors.New("no command: give the command that starts the runtime, or runtime: command")
	}
	rt := Runtime{Command: argv, Env: y.Env, Dir: y.Dir, Socket: y.Socket}
	if y.Warm != nil {
		w, err := y.Warm.warm()
		if err != nil {
			return Runtime{}, err
		}
		rt.Warm = w
	}
	if y.Codec != "" {
		c, err := protocol.ParseCodec(y.Codec)
		if err != nil {
			return Runtime{}, err
		}
		rt.Codec = c
	}
	return rt, nil
}
