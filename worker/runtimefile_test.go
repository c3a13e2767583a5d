package worker

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

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
  warm:
    command: ./gotasks
    warm: {processes: 2, tasks_per_process: 4, max_tasks: 1000, max_rss: 512MiB, idle_timeout: 10m}
  airflow:
    runtime: airflow
    python: /venv/bin/python
    dags_folder: /srv/dags
    env: {AIRFLOW_HOME: /srv/airflow}
    prefork: {}
  executor:
    runtime: command
    prefork:
      python: /venv/bin/python
      preload: [taskwire_airflow.run:preload]
      modules: [taskwire_airflow.run]
      env: {AIRFLOW_HOME: /srv/airflow}
      restart_delay: 2s
      ready_timeout: 5m
      spare: 4
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Runtime{
		"default": {},
		"go":      {Command: []string{"./gotasks", "--comm", "{comm_addr}", "--logs", "{logs_addr}"}},
		"python": {Command: []string{"python3", "my tasks.py", "--comm", "{comm_addr}"}, Codec: protocol.CodecJSON,
			Env: map[string]string{"PYTHONUNBUFFERED": "1"}, Dir: "/tmp", Socket: SocketUnix},
		"warm": {Command: []string{"./gotasks"}, Warm: &Warm{Processes: 2, TasksPerProcess: 4, MaxTasks: 1000,
			MaxRSS: 512 << 20, IdleTimeout: 10 * time.Minute}},
		"airflow": {Command: []string{"/venv/bin/python", "-m", "taskwire.airflow_runtime"}, Env: map[string]string{"AIRFLOW_HOME": "/srv/airflow"},
			Airflow: &AirflowRuntime{Python: "/venv/bin/python", DagsFolder: "/srv/dags"}, Prefork: &Prefork{}},
		"executor": {Prefork: &Prefork{Python: "/venv/bin/python", Preload: []string{"taskwire_airflow.run:preload"},
			Modules: []string{"taskwire_airflow.run"}, Env: map[string]string{"AIRFLOW_HOME": "/srv/airflow"},
			RestartDelay: 2 * time.Second, ReadyTimeout: 5 * time.Minute, Spare: 4}},
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
		{"warm command runtime", "queues:\n  q:\n    runtime: command\n    warm: {processes: 1}\n", "takes no command"},
		{"warm bad rss", "queues:\n  q:\n    command: x\n    warm: {max_rss: lots}\n", "max_rss"},
		{"warm bad idle", "queues:\n  q:\n    command: x\n    warm: {idle_timeout: 10}\n", "idle_timeout"},
		{"warm negative", "queues:\n  q:\n    command: x\n    warm: {processes: -1}\n", "negative"},
		{"warm unknown", "queues:\n  q:\n    command: x\n    warm: {procs: 1}\n", "procs"},
		{"airflow no dags", "queues:\n  q:\n    runtime: airflow\n", "dags_folder"},
		{"airflow command", "queues:\n  q:\n    runtime: airflow\n    dags_folder: /d\n    command: x\n", "takes no command"},
		{"airflow warm", "queues:\n  q:\n    runtime: airflow\n    dags_folder: /d\n    warm: {processes: 1}\n", "takes no command"},
		{"python elsewhere", "queues:\n  q:\n    command: x\n    python: p\n", "runtime: airflow"},
		{"prefork sdk", "queues:\n  q:\n    command: x\n    prefork: {}\n", "prefork is for"},
		{"prefork command no modules", "queues:\n  q:\n    runtime: command\n    prefork: {}\n", "needs modules"},
		{"prefork bad delay", "queues:\n  q:\n    runtime: command\n    prefork: {modules: [m], restart_delay: 1}\n", "restart_delay"},
		{"prefork negative spare", "queues:\n  q:\n    runtime: command\n    prefork: {modules: [m], spare: -1}\n", "spare -1 is outside 0..64"},
		{"prefork too many spares", "queues:\n  q:\n    runtime: command\n    prefork: {modules: [m], spare: 65}\n", "spare 65 is outside"},
		{"prefork bad module", "queues:\n  q:\n    runtime: command\n    prefork: {modules: [a b]}\n", "bad module"},
		{"prefork unknown", "queues:\n  q:\n    runtime: command\n    prefork: {modules: [m], preloads: [x]}\n", "preloads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRuntimeFile([]byte(tc.yaml))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}
