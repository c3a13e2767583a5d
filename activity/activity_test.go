package activity

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validExecute() Activity {
	return Activity{Kind: KindExecuteTask, ExecuteTask: &ExecuteTask{
		ID: "ti1.1", Token: "tok", Queue: "default",
		TI:         TI{ID: "ti1", DagID: "d", TaskID: "t", RunID: "r", MapIndex: -1, TryNumber: 1},
		Entrypoint: Entrypoint{Command: []string{"echo", "hi"}},
		Retry:      RetryPolicy{Retries: 2, Delay: Duration(time.Second)},
	}}
}

func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	a := validExecute()
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != "ti1.1" || got.Queue() != "default" || got.ExecuteTask.Retry.Delay.D() != time.Second {
		t.Errorf("round trip = %+v", got.ExecuteTask)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	good, _ := validExecute().Marshal()
	mutate := func(f func(m map[string]any)) string {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "decode"},
		{"not_json", `{"kind":`, "decode"},
		{"array", `[]`, "decode"},
		{"unknown_kind", `{"kind":"Nope"}`, "unknown kind"},
		{"missing_body", `{"kind":"ExecuteTask"}`, "needs execute_task"},
		{"both_bodies", mutate(func(m map[string]any) { m["run_callback"] = map[string]any{} }), "only it"},
		{"unknown_field", mutate(func(m map[string]any) { m["extra"] = 1 }), "unknown field"},
		{"bad_queue", mutate(func(m map[string]any) { m["execute_task"].(map[string]any)["queue"] = "Bad Queue" }), "queue"},
		{"no_entrypoint", mutate(func(m map[string]any) { delete(m["execute_task"].(map[string]any), "entrypoint") }), "entrypoint"},
		{"try_zero", mutate(func(m map[string]any) { m["execute_task"].(map[string]any)["ti"].(map[string]any)["try_number"] = 0 }), "try_number"},
		{"bad_duration", mutate(func(m map[string]any) { m["execute_task"].(map[string]any)["execution_timeout"] = "soon" }), "duration"},
		{"trailing", string(good) + `{}`, "trailing"},
		{"too_large", `{"kind":"` + strings.Repeat("x", MaxSizeDefault) + `"}`, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.in))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode(%s) err = %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	base := TaskSpec{Queue: "q", Entrypoint: Entrypoint{Command: []string{"true"}}}
	for _, tc := range []struct {
		name string
		mod  func(*TaskSpec)
		ok   bool
	}{
		{"ok", func(*TaskSpec) {}, true},
		{"sdk_task", func(s *TaskSpec) { s.Command = nil; s.Task = "noop" }, true},
		{"both", func(s *TaskSpec) { s.Task = "noop" }, false},
		{"neither", func(s *TaskSpec) { s.Command = nil }, false},
		{"bad_queue", func(s *TaskSpec) { s.Queue = "a.b" }, false},
		{"bad_dag", func(s *TaskSpec) { s.DagID = "a b" }, false},
		// dag_id and task_id as Airflow's KEY_REGEX (ASCII); run_id also
		// takes ':', '+' and '@' of Airflow's run ids.
		{"key_chars", func(s *TaskSpec) { s.DagID = "My_dag-1.v2"; s.TaskID = "t.x-y_Z9" }, true},
		{"dag_colon", func(s *TaskSpec) { s.DagID = "a:b" }, false},
		{"dag_plus", func(s *TaskSpec) { s.DagID = "a+b" }, false},
		{"task_at", func(s *TaskSpec) { s.TaskID = "a@b" }, false},
		{"task_unicode", func(s *TaskSpec) { s.TaskID = "tâche" }, false},
		{"dag_dot", func(s *TaskSpec) { s.DagID = "." }, false},
		{"dag_dotdot", func(s *TaskSpec) { s.DagID = ".." }, false},
		{"task_dotdot_inside", func(s *TaskSpec) { s.TaskID = "a..b" }, false},
		{"run_airflow", func(s *TaskSpec) { s.RunID = "manual__2026-12-03T19:00:00+00:00" }, true},
		{"run_dotdot", func(s *TaskSpec) { s.RunID = ".." }, false},
		{"run_slash", func(s *TaskSpec) { s.RunID = "a/b" }, false},
		{"task_251", func(s *TaskSpec) { s.TaskID = strings.Repeat("t", 251) }, false},
		{"task_250", func(s *TaskSpec) { s.TaskID = strings.Repeat("t", 250) }, true},
		{"neg_retries", func(s *TaskSpec) { s.Retries = -1 }, false},
		{"neg_timeout", func(s *TaskSpec) { s.ExecutionTimeout = -1 }, false},
		{"bad_callback", func(s *TaskSpec) { s.Callbacks.OnFailure = &Callback{} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mod(&s)
			s = s.WithDefaults(now)
			if err := s.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	var d Duration
	for in, want := range map[string]time.Duration{`"1m30s"`: 90 * time.Second, `2.5`: 2500 * time.Millisecond} {
		if err := json.Unmarshal([]byte(in), &d); err != nil || d.D() != want {
			t.Errorf("unmarshal %s = %s, %v", in, d.D(), err)
		}
	}
	if err := json.Unmarshal([]byte(`true`), &d); err == nil {
		t.Error("unmarshal true: no error")
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := validExecute().Marshal()
	f.Add(good)
	f.Add([]byte(`{"kind":"RunCallback","run_callback":{}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(data)
		if err != nil {
			return
		}
		// Anything accepted must re-encode and decode to the same activity.
		b, err := a.Marshal()
		if err != nil {
			t.Fatalf("accepted activity does not re-encode: %v", err)
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("re-encoded activity rejected: %v", err)
		}
	})
}

func TestConnectionRedacted(t *testing.T) {
	c := Connection{ConnID: "db", ConnType: "postgres", Login: "etl", Password: "pw", Extra: map[string]any{
		"region": "eu-1", "API_Token": "tok", "oauth": map[string]any{"client_secret": "cs", "scope": "read"},
		"private_keys": []any{"k1", map[string]any{"n": 1}}, "port": 5432,
	}}
	got := c.Redacted()
	want := Connection{ConnID: "db", ConnType: "postgres", Login: "etl", Password: "***", Extra: map[string]any{
		"region": "eu-1", "API_Token": "***", "oauth": map[string]any{"client_secret": "***", "scope": "read"},
		"private_keys": []any{"***", map[string]any{"n": "***"}}, "port": 5432,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Redacted() = %+v\nwant %+v", got, want)
	}
	if c.Password != "pw" || c.Extra["API_Token"] != "tok" {
		t.Error("Redacted changed the connection it was called on")
	}
	for name, want := range map[string]bool{"db_password": true, "apikey": true, "Authorization": true, "greeting": false, "host": false} {
		if SensitiveName(name) != want {
			t.Errorf("SensitiveName(%q) = %v, want %v", name, !want, want)
		}
	}
}
