package activity

import (
	"reflect"
	"testing"
	"time"
)

// full is a record with every pointer, map and slice field set, nested
// JSON values included.
func full() *TaskInstance {
	now := time.Now().UTC()
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	nested := func() map[string]any {
		return map[string]any{"s": "v", "n": 1.5, "m": map[string]any{"k": []any{"a", map[string]any{"x": true}}}}
	}
	cb := func() *Callback {
		return &Callback{Entrypoint: Entrypoint{Command: []string{"cb"}, Env: map[string]string{"A": "1"}}, Queue: "q"}
	}
	return &TaskInstance{ID: "ti", DagID: "d", TaskID: "t", RunID: "r", Queue: "q", State: StateRunning, TryNumber: 2,
		Entrypoint: Entrypoint{Command: []string{"x", "y"}, Task: "t", Env: map[string]string{"E": "1"}},
		Params:     nested(), Callbacks: Callbacks{OnSuccess: cb(), OnFailure: cb(), OnRetry: cb()},
		DagRun:     &DagRun{RunID: "r", LogicalDate: now, Conf: nested()},
		NextMethod: "m", NextKwargs: nested(), Trigger: &Trigger{ID: "tr", Classpath: "c", Kwargs: nested()},
		QueuedAt: at(1), StartDate: at(2), EndDate: at(3), HeartbeatAt: at(4), RetryAt: at(5), UpdatedAt: now,
		RescheduleCount: 1, FirstRescheduleAt: at(10),
		Tries: []Try{{TryNumber: 1, StartDate: at(6), EndDate: at(7)}, {TryNumber: 2, StartDate: at(8), EndDate: at(9)}}}
}

// Clone copies every field and shares no pointer, map or slice with the
// original: a field added to TaskInstance (or to what it holds) without a
// copy in Clone fails here.
func TestCloneSharesNothing(t *testing.T) {
	ti := full()
	c := ti.Clone()
	if !reflect.DeepEqual(ti, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", ti, c)
	}
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		switch a.Kind() {
		case reflect.Pointer:
			if a.IsNil() {
				t.Errorf("%s: nil in the test record: set it in full()", path)
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: pointer shared", path)
			}
			walk(path, a.Elem(), b.Elem())
		case reflect.Interface:
			if !a.IsNil() {
				walk(path, a.Elem(), b.Elem())
			}
		case reflect.Map:
			if a.Len() == 0 {
				t.Errorf("%s: empty in the test record: set it in full()", path)
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: map shared", path)
			}
			for _, k := range a.MapKeys() {
				walk(path+"["+k.String()+"]", a.MapIndex(k), b.MapIndex(k))
			}
		case reflect.Slice:
			if a.Len() == 0 {
				t.Errorf("%s: empty in the test record: set it in full()", path)
				return
			}
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: slice shared", path)
			}
			for i := range a.Len() {
				walk(path, a.Index(i), b.Index(i))
			}
		case reflect.Struct:
			if a.Type() == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range a.NumField() {
				walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	}
	walk("ti", reflect.ValueOf(ti), reflect.ValueOf(c))
	c.Tries[0].State = StateFailed
	c.Params["m"].(map[string]any)["k"].([]any)[0] = "changed"
	if ti.Tries[0].State == StateFailed || ti.Params["m"].(map[string]any)["k"].([]any)[0] != "a" {
		t.Error("a change of the clone reached the original")
	}
}

func BenchmarkCloneVsRecordRoundTrip(b *testing.B) {
	ti := full()
	raw, _ := ti.MarshalRecord()
	b.Run("clone", func(b *testing.B) {
		for b.Loop() {
			_ = ti.Clone()
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = UnmarshalRecord(raw)
		}
	})
}
