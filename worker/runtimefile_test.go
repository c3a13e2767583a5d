package worker

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/taskwire/taskwire/protocol"
)

func TestParseRuntimeFile(t *testing.T) {
	f, err := ParseRuntimeFile([]byte(`
queues:
  default:
    runtime: command
  go:
    command: ./gotasks --comm {comm_addr} --logs {logs_addr}
  python:
    command: [python3, "my tasks.py", --comm, "{comm_addr}"]
    codec: json
    env: {PYTHONUNBUFFERED: "1"}
    dir: /tmp
    socket: unix
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Runtime{
		"default": {},
		"go":      {Command: []string{"./gotasks", "--comm", "{comm_addr}", "--logs", "{logs_addr}"}},
		"python": {Command: []string{"python3", "my tasks.py", "--comm", "{comm_addr}"}, Codec: protocol.CodecJSON,
			Env: map[string]string{"PYTHONUNBUFFERED": "1"}, Dir: "/tmp", Socket: SocketUnix},
	}
	if !reflect.DeepEqual(f.Queues, want) {
		t.Errorf("got %+v\nwant %+v", f.Queues, want)
	}
}

func TestParseRuntimeFileRefuses(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty", ``, "no queues"},
		{"unknown field", "queues:\n  q:\n    comand: x\n", "comand"},
		{"no command", "queues:\n  q:\n    codec: json\n", "no command"},
		{"command with args", "queues:\n  q:\n    runtime: command\n    command: x\n", "takes no command"},
		{"bad runtime", "queues:\n  q:\n    runtime: jvm\n", "jvm"},
		{"bad codec", "queues:\n  q:\n    command: x\n    codec: xml\n", "xml"},
		{"bad command type", "queues:\n  q:\n    command: {a: b}\n", "string or a list"},
		{"not yaml", "queues: [", "runtime file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRuntimeFile([]byte(tc.yaml))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}
