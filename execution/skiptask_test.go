package execution

import (
	"encoding/json"
	"testing"
)

// A SkipTask is a task id or a [task_id, map_index] pair on the wire, as
// in Airflow's TISkippedDownstreamTasksStatePayload; anything else is
// refused.
func TestSkipTaskJSON(t *testing.T) {
	var req SkipDownstreamRequest
	if err := json.Unmarshal([]byte(`{"tasks":["a",["b",2],["c",-1]]}`), &req); err != nil {
		t.Fatal(err)
	}
	want := []SkipTask{{"a", -1}, {"b", 2}, {"c", -1}}
	if len(req.Tasks) != len(want) {
		t.Fatalf("got %v, want %v", req.Tasks, want)
	}
	for i := range want {
		if req.Tasks[i] != want[i] {
			t.Errorf("tasks[%d] = %v, want %v", i, req.Tasks[i], want[i])
		}
	}
	b, err := json.Marshal(req)
	if err != nil || string(b) != `{"tasks":["a",["b",2],"c"]}` {
		t.Errorf("encoded %s (%v)", b, err)
	}
	for _, bad := range []string{`1`, `["a"]`, `["a",1,2]`, `[1,"a"]`, `["a",1.5]`, `{"a":1}`, `null`} {
		var s SkipTask
		if err := json.Unmarshal([]byte(bad), &s); err == nil && bad != `null` {
			t.Errorf("%s: decoded as %v, want an error", bad, s)
		}
	}
}

func FuzzSkipTask(f *testing.F) {
	for _, s := range []string{`"a"`, `["b",2]`, `["c",-1]`, `[1,"a"]`, `["a"]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s SkipTask
		if err := json.Unmarshal(b, &s); err != nil {
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("%q decoded as %v does not encode: %v", b, s, err)
		}
		var again SkipTask
		if err := json.Unmarshal(out, &again); err != nil || again != s {
			t.Fatalf("%q → %v → %s → %v (%v)", b, s, out, again, err)
		}
	})
}
