package dag

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

// TestRunMarshal: the hand-written encoder decodes to the same record,
// and writes what encoding/json would (strings with quotes, control
// characters and non-ASCII, params of every kind, optional fields).
func TestRunMarshal(t *testing.T) {
	t.Parallel()
	d := mustParse(t, diamond)
	now := time.Date(2026, 12, 3, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	r := NewRun(d, 3, `r"1\`+"\n"+`é`, RunTypeManual, now, map[string]any{"k": []any{1.5, "x", nil, true}}, now)
	src := func(string, string) (any, error) { return []any{1.0, "two", map[string]any{"a": "b"}}, nil }
	r.Evaluate(d, src, now)
	end(t, r, "a", -1, activity.StateSuccess)
	r.Evaluate(d, src, now)
	r.Instance("b", -1).Reason = "exit \"1\"\t<&>\v\x00\xff 😀"
	r.Clears = 2
	end := now.Add(time.Second)
	r.EndDate = &end
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	got, err := UnmarshalRun(b)
	if err != nil {
		t.Fatal(err)
	}
	// What encoding/json would make of the same record, decoded the same way.
	type plain Run
	std, err := json.Marshal((*plain)(r))
	if err != nil {
		t.Fatal(err)
	}
	want, err := UnmarshalRun(std)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hand-written encoding decodes differently:\n got %s\nwant %s", b, std)
	}
	if got.Instance("c", 2).TIID != r.Instance("c", 2).TIID || got.Instance("c", 2).TIID == "" {
		t.Fatal("instance ids not derived on decode")
	}
}
