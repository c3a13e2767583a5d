package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

func ptr[T any](v T) *T { return &v }

func sec(n float64) activity.Duration { return activity.Duration(n * float64(time.Second)) }

func TestParseSubmit(t *testing.T) {
	t.Parallel()
	cmd := func(args ...string) activity.Entrypoint { return activity.Entrypoint{Command: args} }
	tests := []struct {
		name  string
		env   map[string]string
		file  string // written to spec.<ext> when set
		ext   string
		stdin string
		args  []string
		want  []activity.TaskSpec
		wait  bool
	}{
		{
			name: "command_defaults",
			args: []string{"--", "echo", "hello, world"},
			want: []activity.TaskSpec{{Queue: "default", Entrypoint: cmd("echo", "hello, world")}},
		},
		{
			name: "command_without_dashdash_keeps_its_flags",
			args: []string{"--queue", "q1", "ls", "-la", "--json"},
			want: []activity.TaskSpec{{Queue: "q1", Entrypoint: cmd("ls", "-la", "--json")}},
		},
		{
			name: "every_flag",
			args: []string{"--queue", "etl", "--dag-id", "d", "--task-id", "t", "--run-id", "r", "--retries", "2",
				"--retry-delay", "200ms", "--retry-exponential", "--max-retry-delay", "1m", "--timeout", "10m",
				"--env", "A=1", "--env", "B=x=y", "--param", "n=3", "--param", "f=1.5", "--param", "ok=true",
				"--param", "day=2026-11-22", "--param", "l=[1,2]", "--param", "s=\"007\"", "--param", "z=007",
				"--wait", "--", "./etl.sh", "--day", "2026-11-22"},
			wait: true,
			want: []activity.TaskSpec{{
				Queue: "etl", DagID: "d", TaskID: "t", RunID: "r", ExecutionTimeout: sec(600),
				Params: map[string]any{"n": json.Number("3"), "f": json.Number("1.5"), "ok": true, "day": "2026-11-22",
					"l": []any{json.Number("1"), json.Number("2")}, "s": "007", "z": "007"},
				Entrypoint: activity.Entrypoint{Command: []string{"./etl.sh", "--day", "2026-11-22"},
					Env: map[string]string{"A": "1", "B": "x=y"}},
				RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: sec(0.2), Exponential: true, MaxDelay: sec(60)},
			}},
		},
		{
			name: "airflow_task_by_task_id",
			args: []string{"--queue", "airflow", "--dag-id", "D", "--task-id", "T", "--run-id", "R"},
			want: []activity.TaskSpec{{Queue: "airflow", DagID: "D", TaskID: "T", RunID: "R", Entrypoint: activity.Entrypoint{Task: "T"}}},
		},
		{
			name: "sdk_task",
			args: []string{"--queue", "go", "--task", "push", "--dag-id", "demo", "--run-id", "run1"},
			want: []activity.TaskSpec{{Queue: "go", DagID: "demo", RunID: "run1", Entrypoint: activity.Entrypoint{Task: "push"}}},
		},
		{
			name: "env_defaults",
			env: map[string]string{"TASKWIRE_SUBMIT_QUEUE": "gpu", "TASKWIRE_SUBMIT_RETRIES": "3",
				"TASKWIRE_SUBMIT_TIMEOUT": "1h", "TASKWIRE_DAG_ID": "ignored", "TASKWIRE_TASK_ID": "ignored"},
			args: []string{"--retries", "1", "--", "true"},
			want: []activity.TaskSpec{{Queue: "gpu", ExecutionTimeout: sec(3600), Entrypoint: cmd("true"),
				RetryPolicy: activity.RetryPolicy{Retries: 1}}},
		},
		{
			name: "yaml_list",
			ext:  ".yaml",
			file: `
- queue: etl
  dag_id: nightly
  task_id: extract
  command: [./extract.sh, --full]
  env: {MODE: full}
  retries: 2
  retry_delay: 30s
  retry_exponential_backoff: true
  execution_timeout: 600
  params: {day: "2026-11-22", n: 3}
- task: load
  map_index: 4
  callbacks:
    on_failure: {command: [./alert.sh], queue: alerts}
`,
			args: []string{"-f", "FILE", "--run-id", "r1", "--env", "TRACE=1"},
			want: []activity.TaskSpec{
				{Queue: "etl", DagID: "nightly", TaskID: "extract", RunID: "r1", ExecutionTimeout: sec(600),
					Params:      map[string]any{"day": "2026-11-22", "n": 3},
					Entrypoint:  activity.Entrypoint{Command: []string{"./extract.sh", "--full"}, Env: map[string]string{"MODE": "full", "TRACE": "1"}},
					RetryPolicy: activity.RetryPolicy{Retries: 2, Delay: sec(30), Exponential: true}},
				{Queue: "default", RunID: "r1", MapIndex: ptr(4),
					Entrypoint: activity.Entrypoint{Task: "load", Env: map[string]string{"TRACE": "1"}},
					Callbacks:  activity.Callbacks{OnFailure: &activity.Callback{Entrypoint: activity.Entrypoint{Command: []string{"./alert.sh"}}, Queue: "alerts"}}},
			},
		},
		{
			name: "yaml_documents",
			ext:  ".yml",
			file: "queue: a\ncommand: [x]\n---\n- {queue: b, task: y}\n- {queue: c, task: z}\n",
			args: []string{"-f", "FILE", "--queue", "override"},
			want: []activity.TaskSpec{
				{Queue: "override", Entrypoint: cmd("x")},
				{Queue: "override", Entrypoint: activity.Entrypoint{Task: "y"}},
				{Queue: "override", Entrypoint: activity.Entrypoint{Task: "z"}},
			},
		},
		{
			name: "json_object_task_flag_replaces_command",
			ext:  ".json",
			file: `{"queue": "q", "command": ["a"], "retries": 1, "retry_delay": "2s"}`,
			args: []string{"-f", "FILE", "--task", "sdk_task"},
			want: []activity.TaskSpec{{Queue: "q", Entrypoint: activity.Entrypoint{Task: "sdk_task"},
				RetryPolicy: activity.RetryPolicy{Retries: 1, Delay: sec(2)}}},
		},
		{
			name:  "json_list_from_stdin",
			stdin: `[{"queue": "q", "task": "a"}, {"task": "b", "dag_id": "d"}]`,
			args:  []string{"-f", "-"},
			want: []activity.TaskSpec{
				{Queue: "q", Entrypoint: activity.Entrypoint{Task: "a"}},
				{Queue: "default", DagID: "d", Entrypoint: activity.Entrypoint{Task: "b"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if tc.file != "" {
				p := filepath.Join(t.TempDir(), "spec"+tc.ext)
				if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append([]string(nil), args...)
				for i, a := range args {
					if a == "FILE" {
						args[i] = p
					}
				}
			}
			c := newTestCLI(tc.env)
			c.stdin = strings.NewReader(tc.stdin)
			o, err := c.parseSubmit(args)
			if err != nil {
				t.Fatalf("parseSubmit: %v\nstderr: %s", err, c.errOut.String())
			}
			if !reflect.DeepEqual(o.specs, tc.want) {
				t.Errorf("specs\n got %#v\nwant %#v", o.specs, tc.want)
			}
			if o.wait != tc.wait {
				t.Errorf("wait %v, want %v", o.wait, tc.wait)
			}
		})
	}
}

func TestParseSubmitRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ext, file string
		args            []string
		wantErr         string
	}{
		{"unknown_yaml_field", ".yaml", "queue: q\ncomand: [x]\n", nil, "field comand not found"},
		{"unknown_json_field", ".json", `{"queue": "q", "comand": ["x"]}`, nil, `unknown field "comand"`},
		{"bad_duration", ".yaml", "queue: q\ncommand: [x]\nretry_delay: soon\n", nil, `duration "soon"`},
		{"empty", ".yaml", "", nil, "no task specs"},
		{"empty_list", ".json", "[]", nil, "no task specs"},
		{"trailing_json", ".json", `{"queue":"q","task":"t"} {}`, nil, "trailing data"},
		{"invalid_second_spec", ".yaml", "- {queue: q, task: a}\n- {queue: q}\n", nil, "spec 2: needs a command or a task"},
		{"file_and_command", ".yaml", "queue: q\ntask: t\n", []string{"echo"}, "not both"},
		{"missing_file", "", "", nil, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "spec"+tc.ext)
			if tc.name != "missing_file" {
				if err := os.WriteFile(p, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := newTestCLI(nil)
			_, err := c.parseSubmit(append([]string{"-f", p}, tc.args...))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseSubmit error %v, want one containing %q", err, tc.wantErr)
			}
			if code := c.exitCode(err); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)
	tests := []struct {
		ti   activity.TaskInstance
		want string
	}{
		{activity.TaskInstance{State: activity.StateQueued, TryNumber: 1}, "queued"},
		{activity.TaskInstance{State: activity.StateQueued, TryNumber: 2}, "queued (try 2)"},
		{activity.TaskInstance{State: activity.StateRunning, TryNumber: 1, Hostname: "host-a"}, "running (try 1 on host-a)"},
		{activity.TaskInstance{State: activity.StateUpForRetry, TryNumber: 1, Reason: "exit status 1", RetryAt: &at},
			"up_for_retry (try 1: exit status 1; retry at 2026-11-22T10:00:05Z)"},
		{activity.TaskInstance{State: activity.StateDeferred, TryNumber: 1,
			Trigger: &activity.Trigger{Classpath: "airflow.triggers.temporal.TimeDeltaTrigger", Kind: "timedelta"}},
			"deferred (try 1: waiting on timedelta)"},
		{activity.TaskInstance{State: activity.StateDeferred, TryNumber: 2, Trigger: &activity.Trigger{Classpath: "my.Trigger"}},
			"deferred (try 2: waiting on my.Trigger)"},
		{activity.TaskInstance{State: activity.StateDeferred, TryNumber: 1}, "deferred (try 1)"},
		{activity.TaskInstance{State: activity.StateQueued, TryNumber: 1, NextMethod: "execute_complete"},
			"queued (try 1, resuming execute_complete)"},
		{activity.TaskInstance{State: activity.StateQueued, TryNumber: 1, NextMethod: activity.FailMethod,
			NextKwargs: map[string]any{"error": "trigger timeout after 5s"}},
			"queued (try 1: trigger failed: trigger timeout after 5s)"},
		{activity.TaskInstance{State: activity.StateFailed, TryNumber: 3, Reason: "execution timeout 1s exceeded"},
			"failed (try 3: execution timeout 1s exceeded)"},
		{activity.TaskInstance{State: activity.StateSuccess, TryNumber: 1}, "success (try 1)"},
	}
	for _, tc := range tests {
		if got := describe(&tc.ti); got != tc.want {
			t.Errorf("describe(%s) = %q, want %q", tc.ti.State, got, tc.want)
		}
	}
}
