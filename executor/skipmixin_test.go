package executor

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// skipMixinDAG: route is a mapped branch (Airflow's mapped @task.branch)
// with mapped even and odd, unmapped report directly downstream; pick
// is an unmapped branch over left and right; after_odd and join are
// downstream of the branches' targets.
const skipMixinDAG = `dag_id: smx
tasks:
  - {task_id: route, queue: default, task: route, expand: {n: [0, 1, 2, 3]}}
  - {task_id: even, queue: default, depends_on: [route], command: [x], expand: {n: [0, 1, 2, 3]}}
  - {task_id: odd, queue: default, depends_on: [route], command: [x], expand: {n: [0, 1, 2, 3]}}
  - {task_id: report, queue: default, depends_on: [route], command: [x]}
  - {task_id: after_odd, queue: default, depends_on: [odd], command: [x]}
  - {task_id: join, queue: default, depends_on: [even, odd], trigger_rule: none_failed_min_one_success, command: [x]}
  - {task_id: pick, queue: default, task: pick}
  - {task_id: cmd, queue: default, command: [x]}
  - {task_id: after_cmd, queue: default, depends_on: [cmd], command: [x]}
  - {task_id: left, queue: default, depends_on: [pick], command: [x]}
  - {task_id: right, queue: default, depends_on: [pick], command: [x], expand: {n: [0, 1]}}
`

// The XCom → skip decision of Airflow's NotPreviouslySkippedDep: "followed"
// skips the direct downstream tasks it does not name, "skipped" those it
// names; a mapped instance's value skips the same map index of mapped
// downstream tasks only (an unmapped downstream reads map index -1, where
// a mapped task pushes nothing), an unmapped one's every instance; a
// malformed value is an error naming what is wrong.
func TestSkipMixinRefs(t *testing.T) {
	t.Parallel()
	d, err := dag.Parse([]byte(skipMixinDAG))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from     string
		mapIndex int
		value    string
		want     string // the refs, or "error: " and a part of the message
	}{
		{"route", 0, `{"followed": ["even"]}`, "[odd[0]]"},
		{"route", 1, `{"followed": ["odd"]}`, "[even[1]]"},
		{"route", 2, `{"followed": []}`, "[even[2] odd[2]]"},
		{"route", 3, `{"followed": ["even", "odd", "report"]}`, "[]"},
		{"route", 1, `{"skipped": ["odd", "after_odd", "nope"]}`, "[odd[1]]"},
		{"route", 1, `{"followed": ["even", "odd"], "skipped": ["odd"]}`, "[odd[1]]"},
		{"route", 1, `{}`, "[]"},
		{"route", 1, `{"other": 1}`, "[]"},
		{"pick", -1, `{"followed": ["left"]}`, "[right[-1]]"},
		{"pick", -1, `{"skipped": ["left", "right"]}`, "[left[-1] right[-1]]"},
		{"left", -1, `{"followed": []}`, "[]"}, // no downstream
		{"route", 1, `"even"`, `error: want an object with "followed" or "skipped" task ids, got "even"`},
		{"route", 1, `null`, "error: want an object"},
		{"route", 1, `["even"]`, "error: want an object"},
		{"route", 1, `{"followed": "even"}`, `error: followed: want a list of task ids, got "even"`},
		{"route", 1, `{"followed": null}`, "error: followed: want a list of task ids, got null"},
		{"route", 1, `{"skipped": ["odd", 7]}`, "error: skipped[1]: want a task id (a string), got 7"},
		{"route", 1, `{"followed": {"even": true}}`, "error: followed: want a list"},
	} {
		refs, err := skipMixinRefs(d, c.from, c.mapIndex, []byte(c.value))
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			var s []string
			for _, r := range refs {
				s = append(s, fmt.Sprintf("%s[%d]", r.TaskID, r.MapIndex))
			}
			got = "[" + strings.Join(s, " ") + "]"
		}
		if strings.HasPrefix(c.want, "error: ") && !strings.HasPrefix(got, c.want) || !strings.HasPrefix(c.want, "error: ") && got != c.want {
			t.Errorf("%s[%d] %s: got %s, want %s", c.from, c.mapIndex, c.value, got, c.want)
		}
	}
}

// A DAG run whose mapped branch route's instances each leave a
// skipmixin_key XCom and succeed (what the pinned Airflow SDK's mapped
// @task.branch does): route[0] follows even, route[1] odd, route[2]
// nothing, and route[3]'s value is malformed. The skipped instances are
// never queued; report, not mapped, runs (its trigger rule decides, as in
// Airflow); after_odd (all_success) is skipped and join
// (none_failed_min_one_success) runs. route[3] succeeds with the error in
// its reason, its XCom kept, and skips nothing. The unmapped branch pick
// skips right (both instances) through its XCom alone. A command task's
// skipmixin_key is not read (no SkipMixin operator runs as a command).
func TestSkipMixinXComSkipsInDagRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.putDag(skipMixinDAG)
	if st := f.api("POST", "/api/v1/dags/smx/runs", []byte(`{"run_id":"r1"}`), nil); st != http.StatusCreated {
		t.Fatalf("trigger: %d", st)
	}
	values := map[string]any{
		"route[0]": map[string]any{"followed": []string{"even"}},
		"route[1]": map[string]any{"followed": []string{"odd"}},
		"route[2]": map[string]any{"followed": []string{}},
		"route[3]": map[string]any{"followed": "even"},
		"pick[-1]": map[string]any{"followed": []string{"left"}},
		"cmd[-1]":  map[string]any{"followed": []string{}}, // a command task's: not read
	}
	var ran []string
	for {
		act := f.tryTake("default", 500*time.Millisecond)
		if act == nil {
			break
		}
		name := fmt.Sprintf("%s[%d]", act.TI.TaskID, act.TI.MapIndex)
		ran = append(ran, name)
		req := runReq
		req.ActivityID = act.ID
		rr, err := f.ec.Run(t.Context(), act.Token, act.TI.ID, req)
		if err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
		tc := f.ec.Task(act.TI.ID, rr.Token)
		if name == "pick[-1]" {
			// SkipDownstreamTasks naming a task not downstream: 400.
			err := tc.SkipDownstream(t.Context(), []execution.SkipTask{{TaskID: "route", MapIndex: -1}})
			if !errors.Is(err, execution.ErrBadRequest) || !strings.Contains(err.Error(), `task "route" is not downstream of pick`) {
				t.Errorf("skip-downstream of a task not downstream: %v, want a 400 naming it", err)
			}
		}
		if v, ok := values[name]; ok {
			k := execution.XComKey{DagID: "smx", RunID: "r1", TaskID: act.TI.TaskID, MapIndex: act.TI.MapIndex, Key: skipMixinKey}
			if err := tc.SetXCom(t.Context(), k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := tc.State(t.Context(), execution.StateRequest{State: activity.StateSuccess}); err != nil {
			t.Fatalf("end %s: %v", name, err)
		}
	}
	v := f.waitRun("smx", "r1", func(v dag.RunView) bool { return v.State.Finished() })
	want := "route[0]=success route[1]=success route[2]=success route[3]=success " +
		"even[0]=success even[1]=skipped even[2]=skipped even[3]=success " +
		"odd[0]=skipped odd[1]=success odd[2]=skipped odd[3]=success report=success after_odd=skipped join=success " +
		"pick=success left=success right=skipped cmd=success after_cmd=success"
	states := map[string]string{}
	for _, ti := range v.TaskInstances {
		name := ti.TaskID
		if ti.MapIndex >= 0 {
			name = fmt.Sprintf("%s[%d]", ti.TaskID, ti.MapIndex)
		}
		states[name] = string(ti.State)
		switch {
		case name == "odd[0]" && ti.Reason != "skipped by route[0] (its skipmixin_key XCom)",
			name == "even[2]" && ti.Reason != "skipped by route[2] (its skipmixin_key XCom)":
			t.Errorf("%s's reason %q", name, ti.Reason)
		case name == "route[3]" && !strings.Contains(ti.Reason, `skipmixin_key XCom was not applied, nothing downstream skipped by it: followed: want a list of task ids, got "even"`):
			t.Errorf("route[3]'s reason %q, want the malformed value's error", ti.Reason)
		}
	}
	for _, kv := range strings.Fields(want) {
		name, st, _ := strings.Cut(kv, "=")
		if states[name] != st {
			t.Errorf("%s is %q, want %s (all: %s)", name, states[name], st, tiStates(v))
		}
	}
	if v.State != dag.RunSuccess {
		t.Errorf("run %s, want success", v.State)
	}
	for _, name := range ran {
		if states[name] == "skipped" {
			t.Errorf("%s was queued and is skipped (queued: %v)", name, ran)
		}
	}
	var x struct {
		Value map[string]any `json:"value"`
	}
	if st := f.api("GET", "/api/v1/xcoms/smx/r1/route/skipmixin_key?map_index=3", nil, &x); st != http.StatusOK || x.Value["followed"] != "even" {
		t.Errorf("route[3]'s malformed xcom after the run: %d %v", st, x.Value)
	}
}

// FuzzSkipMixinRefs: any skipmixin_key value is decided or refused with an
// error, and what it skips is a direct downstream task of the caller, at
// the caller's map index or, of an unmapped caller, whole.
func FuzzSkipMixinRefs(f *testing.F) {
	for _, s := range []string{`{"followed": ["even"]}`, `{"skipped": ["odd", 7]}`, `{"followed": null}`, `"x"`, `{}`, `[`} {
		f.Add(s, 1)
		f.Add(s, -1)
	}
	d, err := dag.Parse([]byte(skipMixinDAG))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value string, mapIndex int) {
		mapIndex = max(mapIndex, -1)
		from := "route"
		if mapIndex < 0 {
			from = "pick"
		}
		refs, err := skipMixinRefs(d, from, mapIndex, []byte(value))
		if err != nil && refs != nil {
			t.Fatalf("refs %v with error %v", refs, err)
		}
		for _, r := range refs {
			tk := d.Task(r.TaskID)
			if tk == nil || !slices.Contains(tk.DependsOn, from) || r.MapIndex != mapIndex || r.MapIndex >= 0 && !tk.Mapped() {
				t.Fatalf("%s[%d] %q skips %+v", from, mapIndex, value, r)
			}
		}
	})
}
