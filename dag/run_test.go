package dag

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, doc string) *DAG {
	t.Helper()
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func refs(rs []Ref) string {
	var s []string
	for _, r := range rs {
		if r.MapIndex >= 0 {
			s = append(s, fmt.Sprintf("%s[%d]", r.TaskID, r.MapIndex))
		} else {
			s = append(s, r.TaskID)
		}
	}
	return strings.Join(s, ",")
}

func end(t *testing.T, r *Run, task string, mi int, st activity.State) {
	t.Helper()
	in := r.Instance(task, mi)
	if in == nil || !r.End(task, mi, in.TIID, st, 1, "") {
		t.Fatalf("end %s[%d] %s: refused (instance %+v)", task, mi, st, in)
	}
}

func states(r *Run) string {
	var s []string
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		tr := r.Tasks[id]
		for _, in := range tr.Instances {
			st := string(in.State)
			if st == "" {
				st = "none"
			}
			if in.MapIndex >= 0 {
				s = append(s, fmt.Sprintf("%s[%d]=%s", id, in.MapIndex, st))
			} else {
				s = append(s, id+"="+st)
			}
		}
	}
	return strings.Join(s, " ")
}

func TestEvaluateDiamond(t *testing.T) {
	t.Parallel()
	d := mustParse(t, diamond)
	r := NewRun(d, 1, "r1", RunTypeManual, t0, nil, t0)
	src := func(task, key string) (any, error) {
		if task != "a" || key != ReturnValueKey {
			return nil, fmt.Errorf("unexpected xcom %s %s", task, key)
		}
		return []any{1.0, 2.0, 3.0}, nil
	}
	steps := []struct {
		end   func()
		ready string
		want  string
		state RunState
	}{
		{nil, "a", "a=scheduled b=none c=none d=none e=none", RunRunning},
		{func() { end(t, r, "a", -1, activity.StateSuccess) }, "b,c[0],c[1],c[2]",
			"a=success b=scheduled c[0]=scheduled c[1]=scheduled c[2]=scheduled d=none e=none", RunRunning},
		{func() { end(t, r, "b", -1, activity.StateFailed) }, "",
			"a=success b=failed c[0]=scheduled c[1]=scheduled c[2]=scheduled d=none e=upstream_failed", RunRunning},
		{func() { end(t, r, "c", 1, activity.StateSuccess); end(t, r, "c", 0, activity.StateSuccess) }, "",
			"a=success b=failed c[0]=success c[1]=success c[2]=scheduled d=none e=upstream_failed", RunRunning},
		{func() { end(t, r, "c", 2, activity.StateSuccess) }, "d",
			"a=success b=failed c[0]=success c[1]=success c[2]=success d=scheduled e=upstream_failed", RunRunning},
		{func() { end(t, r, "d", -1, activity.StateSuccess) }, "",
			"a=success b=failed c[0]=success c[1]=success c[2]=success d=success e=upstream_failed", RunFailed},
	}
	for i, s := range steps {
		if s.end != nil {
			s.end()
		}
		ev := r.Evaluate(d, src, t0)
		if got := refs(ev.Ready); got != s.ready {
			t.Fatalf("step %d: ready %q, want %q", i, got, s.ready)
		}
		if got := states(r); got != s.want {
			t.Fatalf("step %d: states\n got %s\nwant %s", i, got, s.want)
		}
		if r.State != s.state || ev.Ended != s.state.Finished() {
			t.Fatalf("step %d: run %s (ended %v), want %s", i, r.State, ev.Ended, s.state)
		}
		// A second evaluation of the same record decides nothing again:
		// what another replica would find after losing the compare-and-set.
		if again := r.Evaluate(d, src, t0); again.Changed || len(again.Ready) > 0 {
			t.Fatalf("step %d: second evaluation changed %+v", i, again)
		}
	}
	if r.Tasks["c"].Instances[1].Param != 2.0 {
		t.Fatalf("c[1] param %v", r.Tasks["c"].Instances[1].Param)
	}
	// Ends are applied once: a repeat or a stale id is refused.
	in := r.Instance("d", -1)
	if r.End("d", -1, in.TIID, activity.StateFailed, 1, "") {
		t.Fatal("second end of d accepted")
	}
}

func TestEvaluateMapping(t *testing.T) {
	t.Parallel()
	doc := `dag_id: m
max_map_length: 5
tasks:
  - {task_id: a, queue: q, command: [true]}
  - {task_id: c, queue: q, command: [true], expand: {n: {from: a}}}
  - {task_id: d, queue: q, command: [true], depends_on: [c]}
  - {task_id: e, queue: q, command: [true], depends_on: [c], trigger_rule: all_done}
`
	tests := []struct {
		name   string
		value  any
		err    error
		cState activity.State
		reason string
		dState activity.State
		eState activity.State
	}{
		{"over_cap", []any{1, 2, 3, 4, 5, 6}, nil, activity.StateFailed, "6 elements exceeds the map size limit of 5", StateUpstreamFailed, StateScheduled},
		{"not_a_list", "x", nil, activity.StateFailed, "is not a list", StateUpstreamFailed, StateScheduled},
		{"missing", nil, errors.New("no xcom"), activity.StateFailed, "no xcom", StateUpstreamFailed, StateScheduled},
		{"empty", []any{}, nil, activity.StateSkipped, "empty list", activity.StateSkipped, StateScheduled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := mustParse(t, doc)
			r := NewRun(d, 1, "r", RunTypeManual, t0, nil, t0)
			src := func(string, string) (any, error) { return tt.value, tt.err }
			r.Evaluate(d, src, t0)
			end(t, r, "a", -1, activity.StateSuccess)
			r.Evaluate(d, src, t0)
			c := r.Tasks["c"].Instances
			if len(c) != 1 || c[0].State != tt.cState || !strings.Contains(c[0].Reason, tt.reason) {
				t.Fatalf("c %+v, want %s with %q", c, tt.cState, tt.reason)
			}
			if got := r.Instance("d", -1).State; got != tt.dState {
				t.Fatalf("d %s, want %s", got, tt.dState)
			}
			if got := r.Instance("e", -1).State; got != tt.eState {
				t.Fatalf("e %s, want %s", got, tt.eState)
			}
		})
	}
}

func TestEvaluateLiteralMapAndAdmission(t *testing.T) {
	t.Parallel()
	d := mustParse(t, `dag_id: l
max_active_tasks: 2
tasks:
  - {task_id: m, queue: q, command: [true], expand: {x: [a, b, c]}}
  - {task_id: z, queue: q, command: [true], priority_weight: 10}
`)
	r := NewRun(d, 1, "r", RunTypeManual, t0, nil, t0)
	ev := r.Evaluate(d, nil, t0)
	if got := refs(ev.Ready); got != "z,m[0]" {
		t.Fatalf("ready %q (priority z first, 2 at most)", got)
	}
	end(t, r, "m", 0, activity.StateSuccess)
	if got := refs(r.Evaluate(d, nil, t0).Ready); got != "m[1]" {
		t.Fatalf("ready %q", got)
	}
	end(t, r, "z", -1, activity.StateSuccess)
	end(t, r, "m", 1, activity.StateSuccess)
	if got := refs(r.Evaluate(d, nil, t0).Ready); got != "m[2]" {
		t.Fatalf("ready %q", got)
	}
	end(t, r, "m", 2, activity.StateSuccess)
	if ev := r.Evaluate(d, nil, t0); !ev.Ended || r.State != RunSuccess {
		t.Fatalf("run %s", r.State)
	}
}

func TestClear(t *testing.T) {
	t.Parallel()
	d := mustParse(t, diamond)
	r := NewRun(d, 1, "r", RunTypeManual, t0, nil, t0)
	src := func(string, string) (any, error) { return []any{1.0}, nil }
	r.Evaluate(d, src, t0)
	end(t, r, "a", -1, activity.StateSuccess)
	r.Evaluate(d, src, t0)
	end(t, r, "b", -1, activity.StateFailed)
	end(t, r, "c", 0, activity.StateSuccess)
	r.Evaluate(d, src, t0)
	end(t, r, "d", -1, activity.StateSuccess)
	r.Evaluate(d, src, t0)
	if r.State != RunFailed {
		t.Fatalf("run %s", r.State)
	}
	oldB := r.Instance("b", -1).TIID
	n, err := r.Clear(d, []string{"b"}, true, t0)
	if err != nil || n != 3 { // b, d, e
		t.Fatalf("clear: %d %v", n, err)
	}
	if r.State != RunRunning {
		t.Fatalf("run %s after clear", r.State)
	}
	ev := r.Evaluate(d, src, t0)
	if refs(ev.Ready) != "b" {
		t.Fatalf("ready %q", refs(ev.Ready))
	}
	b := r.Instance("b", -1)
	if b.TIID == oldB || b.Try != 1 {
		t.Fatalf("cleared b %+v (old id %s)", b, oldB)
	}
	if _, err := r.Clear(d, []string{"b"}, false, t0); !errors.Is(err, ErrActive) {
		t.Fatalf("clear of a scheduled task: %v", err)
	}
	if _, err := r.Clear(d, []string{"nope"}, false, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("clear of an unknown task: %v", err)
	}
}

func TestInstanceIDStable(t *testing.T) {
	t.Parallel()
	a := InstanceID("d", "r", "t", 3, 0)
	if a != InstanceID("d", "r", "t", 3, 0) || a == InstanceID("d", "r", "t", 3, 1) || a == InstanceID("d", "r", "t", 2, 0) {
		t.Fatal("instance ids not stable and distinct")
	}
}

// SkipDownstream (Airflow's SkipDownstreamTasks from a running branch or
// short-circuit task): the named undecided tasks downstream of the caller
// are skipped, and the trigger rules below them see it; a task that is not
// downstream is refused and nothing changes.
func TestSkipDownstream(t *testing.T) {
	t.Parallel()
	d := mustParse(t, diamond)
	r := NewRun(d, 1, "r1", RunTypeManual, t0, nil, t0)
	r.Evaluate(d, nil, t0)
	for _, bad := range [][]string{{"a"}, {"nope"}, {"b", "a"}} {
		if _, err := r.SkipDownstream(d, "b", whole(bad...), t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("skip %v from b: %v, want ErrNotFound", bad, err)
		}
	}
	if n, err := r.SkipDownstream(d, "a", whole("b", "c", "e"), t0); err != nil || n != 3 {
		t.Fatalf("skip b, c, e from a: %d, %v", n, err)
	}
	if in := r.Instance("b", -1); in.State != activity.StateSkipped || in.Reason != "skipped by a" {
		t.Errorf("b: %+v", in)
	}
	end(t, r, "a", -1, activity.StateSuccess)
	ev := r.Evaluate(d, func(string, string) (any, error) { return nil, errors.New("c must not expand") }, t0)
	// d is all_done: it runs.
	if got, want := states(r), "a=success b=skipped c=skipped d=scheduled e=skipped"; got != want {
		t.Errorf("states %s, want %s", got, want)
	}
	if refs(ev.Ready) != "d" {
		t.Errorf("ready %v, want d", refs(ev.Ready))
	}
	if n, err := r.SkipDownstream(d, "a", whole("b"), t0); err != nil || n != 0 {
		t.Errorf("skip again: %d, %v, want 0 (decided already)", n, err)
	}
}

func whole(ids ...string) []Ref {
	out := make([]Ref, len(ids))
	for i, id := range ids {
		out[i] = Ref{TaskID: id, MapIndex: -1}
	}
	return out
}

// SkipDownstream with map indexes (SkipDownstreamTasks' [task_id,
// map_index] pairs): a mapped task not expanded yet remembers the index
// (through the record's encoding) and its expansion skips that instance
// only; an expanded one skips the named instance only; a pair with -1
// skips the whole task, and a map index of a task that is not mapped
// names nothing.
func TestSkipDownstreamMapIndex(t *testing.T) {
	t.Parallel()
	d := mustParse(t, `dag_id: m
tasks:
  - {task_id: a, queue: q, command: [true], expand: {x: [1, 2, 3]}}
  - {task_id: b, queue: q, command: [true], depends_on: [a], expand: {x: [1, 2, 3]}}
  - {task_id: c, queue: q, command: [true], depends_on: [a]}
  - {task_id: d, queue: q, command: [true], depends_on: [a], expand: {x: [1, 2, 3]}}
`)
	r := NewRun(d, 1, "r1", RunTypeManual, t0, nil, t0)
	r.Evaluate(d, nil, t0)
	if n, err := r.SkipDownstream(d, "a", []Ref{{"b", 1}, {"c", 2}, {"b", 1}}, t0); err != nil || n != 1 {
		t.Fatalf("skip b[1], c[2] from a: %d, %v, want 1 (b[1] marked; c is not mapped)", n, err)
	}
	if _, err := r.SkipDownstream(d, "a", []Ref{{"b", -2}}, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("map index -2: %v, want ErrNotFound", err)
	}
	b, _ := r.Marshal()
	r, err := UnmarshalRun(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		end(t, r, "a", i, activity.StateSuccess)
	}
	r.Evaluate(d, nil, t0)
	got := map[string]activity.State{}
	for _, id := range []string{"b", "c", "d"} {
		for _, in := range r.Tasks[id].Instances {
			got[fmt.Sprintf("%s[%d]", id, in.MapIndex)] = in.State
		}
	}
	want := map[string]activity.State{"b[0]": StateScheduled, "b[1]": activity.StateSkipped, "b[2]": StateScheduled,
		"c[-1]": StateScheduled, "d[0]": StateScheduled, "d[1]": StateScheduled, "d[2]": StateScheduled}
	if !maps.Equal(got, want) {
		t.Errorf("after the expansion: %v, want %v", got, want)
	}
	if in := r.Instance("b", 1); in.Reason != "skipped by a" {
		t.Errorf("b[1] reason %q", in.Reason)
	}
	if len(r.Tasks["b"].Skips) != 0 {
		t.Errorf("skips kept after the expansion: %v", r.Tasks["b"].Skips)
	}
	// Expanded: d[2] only; then the whole of b (what is undecided).
	r2 := NewRun(d, 1, "r2", RunTypeManual, t0, nil, t0)
	r2.Evaluate(d, nil, t0)
	r2.Tasks["d"].Expanded = true
	r2.Tasks["d"].Instances = []Instance{{MapIndex: 0}, {MapIndex: 1}, {MapIndex: 2}}
	if n, err := r2.SkipDownstream(d, "a", []Ref{{"d", 2}, {"c", -1}}, t0); err != nil || n != 2 {
		t.Fatalf("skip d[2], c: %d, %v", n, err)
	}
	if r2.Instance("d", 2).State != activity.StateSkipped || r2.Instance("d", 1).State != StateNone || r2.Instance("c", -1).State != activity.StateSkipped {
		t.Errorf("d[1] %s d[2] %s c %s, want none, skipped, skipped", r2.Instance("d", 1).State, r2.Instance("d", 2).State, r2.Instance("c", -1).State)
	}
}

// TestEvaluateIndexMatchesFresh drives runs of random DAGs (every rule,
// mapped tasks, priorities, max_active_tasks, clears) and checks at each
// step that evaluating the long-lived copy (with its open-task index)
// decides exactly what evaluating a copy decoded afresh decides.
func TestEvaluateIndexMatchesFresh(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	ends := []activity.State{activity.StateSuccess, activity.StateSuccess, activity.StateFailed, activity.StateSkipped}
	for iter := range 100 {
		var doc strings.Builder
		fmt.Fprintf(&doc, "dag_id: rnd\n")
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&doc, "max_active_tasks: %d\n", 1+rng.IntN(3))
		}
		doc.WriteString("tasks:\n")
		n := 2 + rng.IntN(10)
		for i := range n {
			fmt.Fprintf(&doc, "  - {task_id: t%d, queue: q, command: [\"true\"], trigger_rule: %s", i, TriggerRules[rng.IntN(len(TriggerRules))])
			var ups []string
			for j := range i {
				if rng.IntN(3) == 0 {
					ups = append(ups, fmt.Sprintf("t%d", j))
				}
			}
			if len(ups) > 0 {
				fmt.Fprintf(&doc, ", depends_on: [%s]", strings.Join(ups, ", "))
			}
			if rng.IntN(5) == 0 {
				fmt.Fprintf(&doc, ", expand: {x: [%s]}", strings.Repeat("1, ", rng.IntN(4))+"2")
			}
			if rng.IntN(4) == 0 {
				fmt.Fprintf(&doc, ", priority_weight: %d", rng.IntN(5))
			}
			doc.WriteString("}\n")
		}
		d := mustParse(t, doc.String())
		r := NewRun(d, 1, "r", RunTypeManual, t0, nil, t0)
		clears := 0
		for step := 0; step < 200; step++ {
			before, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := UnmarshalRun(before)
			if err != nil {
				t.Fatal(err)
			}
			ev := r.Evaluate(d, nil, t0)
			evFresh := fresh.Evaluate(d, nil, t0)
			got, _ := r.Marshal()
			want, _ := fresh.Marshal()
			if refs(ev.Ready) != refs(evFresh.Ready) || ev.Changed != evFresh.Changed || ev.Ended != evFresh.Ended || string(got) != string(want) {
				t.Fatalf("iteration %d step %d, dag:\n%s\nindexed: ready %s changed %v ended %v\n%s\nfresh: ready %s changed %v ended %v\n%s",
					iter, step, doc.String(), refs(ev.Ready), ev.Changed, ev.Ended, got, refs(evFresh.Ready), evFresh.Changed, evFresh.Ended, want)
			}
			if r.State.Finished() {
				if clears == 2 {
					break
				}
				clears++
				if _, err := r.Clear(d, []string{fmt.Sprintf("t%d", rng.IntN(n))}, rng.IntN(2) == 0, t0); err != nil {
					t.Fatal(err)
				}
				continue
			}
			live := map[string]activity.State{} // ended, told by ApplyEnds
			for id, tr := range r.Tasks {
				for _, in := range tr.Instances {
					switch {
					case in.State != StateScheduled || rng.IntN(2) == 0:
					case rng.IntN(2) == 0:
						r.End(id, in.MapIndex, in.TIID, ends[rng.IntN(len(ends))], 1, "")
					default:
						live[in.TIID] = ends[rng.IntN(len(ends))]
					}
				}
			}
			r.ApplyEnds(func(tiID string) (activity.State, int, string, bool) {
				st, ok := live[tiID]
				return st, 1, "", ok
			})
		}
		if !r.State.Finished() {
			t.Fatalf("iteration %d: run still %s after 200 steps:\n%s", iter, r.State, doc.String())
		}
	}
}
