package worker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

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
//
// A command given as a string is split on spaces; give a list to keep
// spaces in an argument.
type RuntimeFile struct {
	Queues map[string]Runtime
}

type runtimeFileYAML struct {
	Queues map[string]runtimeYAML `yaml:"queues"`
}

type runtimeYAML struct {
	Runtime string            `yaml:"runtime"`
	Command yaml.Node         `yaml:"command"`
	Codec   string            `yaml:"codec"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	Socket  string            `yaml:"socket"`
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
	return out, nil
}

func (y runtimeYAML) runtime() (Runtime, error) {
	var argv []string
	switch y.Command.Kind {
	case 0:
	case yaml.ScalarNode:
		argv = strings.Fields(y.Command.Value)
	case yaml.SequenceNode:
		if err := y.Command.Decode(&argv); err != nil {
			return Runtime{}, fmt.Errorf("command: %w", err)
		}
	default:
		return Runtime{}, errors.New("command: want a string or a list of strings")
	}
	switch y.Runtime {
	case "command":
		if len(argv) > 0 || y.Codec != "" || len(y.Env) > 0 || y.Dir != "" || y.Socket != "" {
			return Runtime{}, errors.New("runtime: command takes no command, codec, env, dir or socket (the activity names the executable)")
		}
		return Runtime{}, nil
	case "", "sdk":
	default:
		return Runtime{}, fmt.Errorf("runtime %q: want command, or sdk (the default) with a command", y.Runtime)
	}
	if len(argv) == 0 {
		return Runtime{}, errors.New("no command: give the command that starts the runtime, or runtime: command")
	}
	rt := Runtime{Command: argv, Env: y.Env, Dir: y.Dir, Socket: y.Socket}
	if y.Codec != "" {
		c, err := protocol.ParseCodec(y.Codec)
		if err != nil {
			return Runtime{}, err
		}
		rt.Codec = c
	}
	return rt, nil
}
