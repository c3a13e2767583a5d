package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
	"github.com/taskwire/taskwire/queue/queuetest"
)

const diamondDAG = `dag_id: diamond
tasks:
  - {task_id: a, queue: default, command: [sh, -c, 'echo "[1,2,3]"']}
  - {task_id: b, queue: default, depends_on: [a], command: [sh, -c, 'exit 1']}
  - {task_id: c, queue: default, depends_on: [a], command: [sh, -c, 'echo "n=$TASKWIRE_PARAMS"'],
     expand: {n: {from: a}}}
  - {task_id: d, queue: default, depends_on: [b, c], trigger_rule: all_done, command: [true]}
  - {task_id: e, queue: default, depends_on: [b], command: [true]}
`

// api calls the public API and decodes the answer into out (if any); it
// returns the status.
func (f *fixture) api(method, path string, body []byte, out any) int {
	f.t.Helper()
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			f.t.Fatalf("%s %s: decode %d answer: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// tryTake fetches the next activity of queue q, or nil when none comes
// within wait.
func (f *fixture) tryTake(q string, wait time.Duration) *activity.ExecuteTask {
	f.t.Helper()
	cons, err := f.q.ActivityConsumer(f.t.Context(), q)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := queuetest.Next(cons, wait)
	if errors.Is(err, queue.ErrTimeout) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	_ = m.Ack()
	a, err := activity.Decode(m.Data())
	if err != nil {
		f.t.Fatal(err)
	}
	return a.ExecuteTask
}

// finish runs an activity's try as a worker would and ends it in state
// st, pushing returnValue first unless it is nil.
func (f *fixture) finish(act *activity.ExecuteTask, st activity.State, returnValue any) {
	f.t.Helper()
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(f.t.Context(), act.Token, act.TI.ID, req)
	// An activity queued by another replica may overtake its record's
	// write to this one: a worker retries the 404 (worker/handoff.go).
	for deadline := time.Now().Add(5 * time.Second); errors.Is(err, execution.ErrNotFound) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		rr, err = f.ec.Run(f.t.Context(), act.Token, act.TI.ID, req)
	}
	if err != nil {
		f.t.Fatalf("run %s: %v", act.TI.TaskID, err)
	}
	tc := f.ec.Task(act.TI.ID, rr.Token)
	if returnValue != nil {
		k := execution.XComKey{DagID: act.TI.DagID, RunID: act.TI.RunID, TaskID: act.TI.TaskID, MapIndex: act.TI.MapIndex, Key: "return_value"}
		if err := tc.SetXCom(f.t.Context(), k, returnValue); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := tc.State(f.t.Context(), execution.StateRequest{State: st}); err != nil {
		f.t.Fatalf("end %s: %v", act.TI.TaskID, err)
	}
}

func (f *fixture) putDag(doc string) {
	f.t.Helper()
	var d struct {
		DagID string `json:"dag_id"`
	}
	if err := jsonOrYAMLID(doc, &d.DagID); err != nil {
		f.t.Fatal(err)
	}
	if st := f.api("PUT", "/api/v1/dags/"+d.DagID, []byte(doc), nil); st != http.StatusCreated && st != http.StatusOK {
		f.t.Fatalf("put dag: %d", st)
	}
}

func jsonOrYAMLID(doc string, id *string) error {
	d, err := dag.Parse([]byte(doc))
	if err != nil {
		return err
	}
	*id = d.DagID
	return nil
}

func (f *fixture) waitRun(dagID, runID string, cond func(dag.RunView) bool) dag.RunView {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var v dag.RunView
		st := f.api("GET", "/api/v1/dags/"+dagID+"/runs/"+runID, nil, &v)
		if st == http.StatusOK && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting on run %s: %d %+v", runID, st, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tiStates(v dag.RunView) string {
	var s []string
	for _, ti := range v.TaskInstances {
		if ti.MapIndex >= 0 {
			s = append(s, fmt.Sprintf("%s[%d]=%s", ti.TaskID, ti.MapIndex, ti.State))
		} else {
			s = append(s, ti.TaskID+"="+string(ti.State))
		}
	}
	return strings.Join(s, " ")
}

// TestDagDiamond runs the diamond through the API with a worker
// played by the test: a's return value maps c over three elements, b
// fails, e is upstream_failed, d (all_done) runs after b and all of c,
// and every task instance is queued exactly once.
func TestDagDiamond(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.putDag(diamondDAG)
	var v dag.RunView
	if st := f.api("POST", "/api/v1/dags/diamond/runs", []byte(`{"run_id":"r1","conf":{"k":"v"}}`), &v); st != http.StatusCreated {
		t.Fatalf("trigger: %d", st)
	}
	// The same run_id again is the same run.
	if st := f.api("POST", "/api/v1/dags/diamond/runs", []byte(`{"run_id":"r1"}`), &v); st != http.StatusOK || v.RunID != "r1" {
		t.Fatalf("trigger again: %d %+v", st, v)
	}
	seen := map[string]int{}
	for {
		act := f.tryTake("default", 500*time.Millisecond)
		if act == nil {
			break
		}
		seen[fmt.Sprintf("%s[%d]", act.TI.TaskID, act.TI.MapIndex)]++
		if act.DagRun == nil || act.DagRun.RunID != "r1" || act.DagRun.Conf["k"] != "v" {
			t.Fatalf("activity's dag run %+v", act.DagRun)
		}
		switch act.TI.TaskID {
		case "a":
			f.finish(act, activity.StateSuccess, []any{1, 2, 3})
		case "b":
			f.finish(act, activity.StateFailed, nil)
		case "c":
			want := []int64{1, 2, 3}[act.TI.MapIndex]
			if got := act.Params["n"]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("c[%d] param n = %v, want %d", act.TI.MapIndex, got, want)
			}
			f.finish(act, activity.StateSuccess, act.TI.MapIndex*10)
		default:
			f.finish(act, activity.StateSuccess, nil)
		}
	}
	want := map[string]int{"a[-1]": 1, "b[-1]": 1, "c[0]": 1, "c[1]": 1, "c[2]": 1, "d[-1]": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("activities %v, want %v", seen, want)
	}
	v = f.waitRun("diamond", "r1", func(v dag.RunView) bool { return v.State.Finished() })
	if got, want := tiStates(v), "a=success b=failed c[0]=success c[1]=success c[2]=success d=success e=upstream_failed"; got != want {
		t.Fatalf("states\n got %s\nwant %s", got, want)
	}
	if v.State != dag.RunFailed {
		t.Fatalf("run %s, want failed (leaf e is upstream_failed)", v.State)
	}
	// c's XCom pulled at map index -1 is the list in map-index order.
	var x struct {
		Value []int `json:"value"`
	}
	if st := f.api("GET", "/api/v1/xcoms/diamond/r1/c/return_value", nil, &x); st != http.StatusOK || fmt.Sprint(x.Value) != "[0 10 20]" {
		t.Fatalf("mapped xcom: %d %v", st, x.Value)
	}
}

// TestDagMapOver100 maps a task over an upstream's 100-element return
// value, and fails a mapping over more than the cap with its reason.
func TestDagMapOver100(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.putDag(`dag_id: m100
max_map_length: 150
tasks:
  - {task_id: a, queue: q, command: [true]}
  - {task_id: c, queue: q, command: [true], expand: {n: {from: a}}}
  - {task_id: z, queue: q, command: [true], depends_on: [c]}
`)
	for _, tc := range []struct {
		run  string
		n    int
		want string
	}{{"ok", 100, "success"}, {"toobig", 151, "failed"}} {
		f.api("POST", "/api/v1/dags/m100/runs", []byte(`{"run_id":"`+tc.run+`"}`), nil)
		list := make([]any, tc.n)
		for i := range list {
			list[i] = i
		}
		mapped := map[int]int{}
		for {
			act := f.tryTake("q", 500*time.Millisecond)
			if act == nil {
				break
			}
			switch act.TI.TaskID {
			case "a":
				f.finish(act, activity.StateSuccess, list)
			case "c":
				mapped[act.TI.MapIndex]++
				f.finish(act, activity.StateSuccess, nil)
			default:
				f.finish(act, activity.StateSuccess, nil)
			}
		}
		v := f.waitRun("m100", tc.run, func(v dag.RunView) bool { return v.State.Finished() })
		if string(v.State) != tc.want {
			t.Fatalf("%s: run %s, want %s (%s)", tc.run, v.State, tc.want, tiStates(v))
		}
		if tc.want == "success" {
			if len(mapped) != 100 {
				t.Fatalf("%d mapped instances ran, want 100", len(mapped))
			}
			for i, n := range mapped {
				if n != 1 || i < 0 || i >= 100 {
					t.Fatalf("map index %d ran %d times", i, n)
				}
			}
			continue
		}
		if len(mapped) != 0 {
			t.Fatalf("over the cap, %d mapped instances ran", len(mapped))
		}
		for _, ti := range v.TaskInstances {
			if ti.TaskID == "c" && (ti.State != activity.StateFailed || !strings.Contains(ti.Reason, "151 elements exceeds the map size limit of 150")) {
				t.Fatalf("c over the cap: %+v", ti)
			}
		}
	}
}

// TestDagTwoExecutorsQueueOnce delivers every task end to two executor
// replicas at once: each downstream task instance is queued exactly once
// (counting the activities on the queue and the records made).
func TestDagTwoExecutorsQueueOnce(t *testing.T) {
	t.Parallel()
	f1 := newFixture(t, queue.Config{}, Config{})
	f2 := startOn(t, f1.q, Config{})
	var b strings.Builder
	b.WriteString("dag_id: fan\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	for i := range 20 {
		fmt.Fprintf(&b, "  - {task_id: b%d, queue: q, command: [true], depends_on: [a]}\n", i)
	}
	b.WriteString("  - {task_id: z, queue: q, command: [true], depends_on: [")
	for i := range 20 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "b%d", i)
	}
	b.WriteString("]}\n")
	f1.putDag(b.String())
	// f1 forgets the ends (as if it crashed after recording each); both
	// replicas are then told of every end at once.
	f1.ex.dags.dropEnds.Store(true)
	f1.api("POST", "/api/v1/dags/fan/runs", []byte(`{"run_id":"r"}`), nil)
	count := map[string]int{}
	for {
		act := f1.tryTake("q", 500*time.Millisecond)
		if act == nil {
			break
		}
		count[act.TI.TaskID]++
		f1.finish(act, activity.StateSuccess, nil)
		ti, err := f1.ex.Get(t.Context(), act.TI.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, ex := range []*Executor{f1.ex, f2.ex} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ex.runEnded(context.Background(), ti.DagID, ti.DagRun.RunID, runEnd{taskID: ti.TaskID,
					mapIndex: ti.MapIndex, tiID: ti.ID, state: ti.State, try: ti.TryNumber})
			}()
		}
		wg.Wait()
	}
	if len(count) != 22 {
		t.Fatalf("%d distinct tasks queued, want 22: %v", len(count), count)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s queued %d times", id, n)
		}
	}
	v := f1.waitRun("fan", "r", func(v dag.RunView) bool { return v.State.Finished() })
	if v.State != dag.RunSuccess {
		t.Fatalf("run %s: %s", v.State, tiStates(v))
	}
	page, err := f1.ex.List(t.Context(), Filter{DagID: "fan"})
	if err != nil || len(page.TIs) != 22 || page.Total != 22 {
		t.Fatalf("%d task-instance records (total %d, %v), want 22", len(page.TIs), page.Total, err)
	}
}

// TestDagEndLostInCrash: the executor records a's end and "crashes"
// before its run hears of it; a restarted executor's start-up scan
// queues b, once.
func TestDagEndLostInCrash(t *testing.T) {
	t.Parallel()
	f1 := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour})
	f1.putDag("dag_id: crash\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n  - {task_id: b, queue: q, command: [true], depends_on: [a]}\n")
	f1.ex.dags.dropEnds.Store(true)
	f1.api("POST", "/api/v1/dags/crash/runs", []byte(`{"run_id":"r"}`), nil)
	act := f1.tryTake("q", 5*time.Second)
	if act == nil || act.TI.TaskID != "a" {
		t.Fatalf("first activity %+v", act)
	}
	f1.finish(act, activity.StateSuccess, nil)
	if next := f1.tryTake("q", 300*time.Millisecond); next != nil {
		t.Fatalf("b queued by the crashed executor: %+v", next.TI)
	}
	if err := f1.ex.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	f2 := startOn(t, f1.q, Config{ScanInterval: time.Hour}) // the restart
	act = f2.tryTake("q", 10*time.Second)
	if act == nil || act.TI.TaskID != "b" {
		t.Fatalf("after restart: %+v", act)
	}
	f2.finish(act, activity.StateSuccess, nil)
	if again := f2.tryTake("q", 300*time.Millisecond); again != nil {
		t.Fatalf("queued again: %+v", again.TI)
	}
	if v := f2.waitRun("crash", "r", func(v dag.RunView) bool { return v.State.Finished() }); v.State != dag.RunSuccess {
		t.Fatalf("run %s", v.State)
	}
}

// TestDagAPIRefusals: an invalid DAG is a 400 naming each problem and
// stores nothing; runs of unknown or paused DAGs are refused.
func TestDagAPIRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	var pb dag.ProblemsBody
	st := f.api("PUT", "/api/v1/dags/bad", []byte("dag_id: bad\ntasks:\n  - {task_id: a, queue: q, command: [true], depends_on: [nope]}\n  - {task_id: a, queue: q, command: [true], trigger_rule: sometimes}\n"), &pb)
	if st != http.StatusBadRequest || len(pb.Problems) != 3 {
		t.Fatalf("invalid dag: %d %+v", st, pb)
	}
	for _, p := range pb.Problems {
		if p.Line == 0 || p.Field == "" {
			t.Errorf("problem without line or field: %+v", p)
		}
	}
	if st := f.api("GET", "/api/v1/dags/bad", nil, nil); st != http.StatusNotFound {
		t.Fatalf("invalid dag stored: %d", st)
	}
	if st := f.api("PUT", "/api/v1/dags/other", []byte("dag_id: x\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n"), &pb); st != http.StatusBadRequest {
		t.Fatalf("dag_id differing from the path: %d", st)
	}
	var eb execution.ErrorBody
	if st := f.api("POST", "/api/v1/dags/nope/runs", nil, &eb); st != http.StatusNotFound {
		t.Fatalf("run of an unknown dag: %d %+v", st, eb)
	}
	f.putDag("dag_id: p\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	var rec DagRecord
	if st := f.api("POST", "/api/v1/dags/p/pause", nil, &rec); st != http.StatusOK || !rec.Paused {
		t.Fatalf("pause: %d %+v", st, rec)
	}
	if st := f.api("POST", "/api/v1/dags/p/runs", nil, &eb); st != http.StatusConflict || !strings.Contains(eb.Detail, "paused") {
		t.Fatalf("run of a paused dag: %d %+v", st, eb)
	}
	f.api("POST", "/api/v1/dags/p/unpause", nil, &rec)
	if st := f.api("POST", "/api/v1/dags/p/runs", nil, nil); st != http.StatusCreated {
		t.Fatalf("run after unpause: %d", st)
	}
	// A new document is a new version; the same one is not.
	f.putDag("dag_id: p\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	f.putDag("dag_id: p\ntasks:\n  - {task_id: a, queue: q, command: [false]}\n")
	f.api("GET", "/api/v1/dags/p", nil, &rec)
	if rec.Version != 2 {
		t.Fatalf("version %d, want 2", rec.Version)
	}
	if st := f.api("DELETE", "/api/v1/dags/p", nil, nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	if st := f.api("POST", "/api/v1/dags/p/runs", nil, nil); st != http.StatusNotFound {
		t.Fatalf("run of a deleted dag: %d", st)
	}
}

// TestDagEndsWriteRunOnDecisions: in a 1 → 20 → 1 fan, the ends of the
// middle tasks decide nothing until the last of them, so the run record
// is written for the run's creation, the fan-out, the fan-in and the
// run's end — not once per end.
func TestDagEndsWriteRunOnDecisions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour})
	var b strings.Builder
	b.WriteString("dag_id: fanw\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	var mids []string
	for i := range 20 {
		fmt.Fprintf(&b, "  - {task_id: b%d, queue: q, command: [true], depends_on: [a]}\n", i)
		mids = append(mids, fmt.Sprintf("b%d", i))
	}
	fmt.Fprintf(&b, "  - {task_id: z, queue: q, command: [true], depends_on: [%s]}\n", strings.Join(mids, ", "))
	f.putDag(b.String())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var (
		mu     sync.Mutex
		writes int
	)
	watching := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		close(watching)
		_ = f.ex.dags.store.Runs().Watch(ctx, queue.DagRunKey("fanw", "r"), func(val []byte, _ uint64) bool {
			mu.Lock()
			writes++
			mu.Unlock()
			return true
		})
	}()
	<-watching
	f.api("POST", "/api/v1/dags/fanw/runs", []byte(`{"run_id":"r"}`), nil)
	for range 22 {
		act := f.tryTake("q", 5*time.Second)
		if act == nil {
			t.Fatal("an activity did not come")
		}
		f.finish(act, activity.StateSuccess, nil)
	}
	v := f.waitRun("fanw", "r", func(v dag.RunView) bool { return v.State.Finished() })
	if v.State != dag.RunSuccess {
		t.Fatalf("run %s: %s", v.State, tiStates(v))
	}
	r, err := f.ex.GetRun(t.Context(), "fanw", "r")
	if err != nil {
		t.Fatal(err)
	}
	for id, tr := range r.Tasks { // the ends are in the record once it ended
		for _, in := range tr.Instances {
			if in.State != activity.StateSuccess {
				t.Errorf("stored %s[%d] = %s", id, in.MapIndex, in.State)
			}
		}
	}
	cancel()
	<-watched
	mu.Lock()
	defer mu.Unlock()
	// The watch may miss the creation if it started late; 4 is the most.
	if writes < 2 || writes > 4 {
		t.Fatalf("run record written %d times for 22 ends, want at most 4 (creation, fan-out, fan-in, end)", writes)
	}
}

// TestDagMaxActiveRunsTwoExecutors: ten runs of a DAG with
// max_active_runs 1 are triggered at once through two executor replicas;
// at no time does more than one run, and every run ends in turn.
func TestDagMaxActiveRunsTwoExecutors(t *testing.T) {
	t.Parallel()
	f1 := newFixture(t, queue.Config{}, Config{})
	f2 := startOn(t, f1.q, Config{})
	f1.putDag("dag_id: one\nmax_active_runs: 1\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n")
	const runs = 10
	var wg sync.WaitGroup
	for i := range runs {
		f := []*fixture{f1, f2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"run_id":"r%d"}`, i)
			if st := f.api("POST", "/api/v1/dags/one/runs", []byte(body), nil); st != http.StatusCreated {
				t.Errorf("trigger r%d: %d", i, st)
			}
		}()
	}
	wg.Wait()
	running := func() (n int, done int, states string) {
		var list struct {
			DagRuns []dag.RunView `json:"dag_runs"`
		}
		if st := f1.api("GET", "/api/v1/dags/one/runs", nil, &list); st != http.StatusOK {
			t.Fatalf("list runs: %d", st)
		}
		for _, v := range list.DagRuns {
			switch {
			case v.State == dag.RunRunning:
				n++
			case v.State.Finished():
				done++
			}
			states += v.RunID + "=" + string(v.State) + " "
		}
		return n, done, states
	}
	seen := map[string]bool{}
	for len(seen) < runs {
		if n, _, states := running(); n > 1 {
			t.Fatalf("%d runs running with max_active_runs 1: %s", n, states)
		}
		act := f1.tryTake("q", 5*time.Second)
		if act == nil {
			_, done, states := running()
			t.Fatalf("no activity after %d runs (%d done): %s", len(seen), done, states)
		}
		if seen[act.TI.RunID] {
			t.Fatalf("run %s queued its task twice", act.TI.RunID)
		}
		seen[act.TI.RunID] = true
		if n, _, states := running(); n != 1 {
			t.Fatalf("%d runs running while one's task runs: %s", n, states)
		}
		f1.finish(act, activity.StateSuccess, nil)
	}
	for i := range runs {
		if v := f1.waitRun("one", fmt.Sprintf("r%d", i), func(v dag.RunView) bool { return v.State.Finished() }); v.State != dag.RunSuccess {
			t.Fatalf("run r%d: %s", i, v.State)
		}
	}
}

// TestDagWatchRun: the run watch sends the run's view at once and again
// as its task instances change, without polling, and ends with the run.
func TestDagWatchRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour})
	f.putDag("dag_id: watched\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n  - {task_id: b, queue: q, command: [true], depends_on: [a]}\n")
	f.api("POST", "/api/v1/dags/watched/runs", []byte(`{"run_id":"r"}`), nil)
	req, err := http.NewRequestWithContext(t.Context(), "GET", f.srv.URL+"/api/v1/dags/watched/runs/r/watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	views := make(chan dag.RunView, 100)
	go func() {
		defer close(views)
		dec := json.NewDecoder(resp.Body)
		for {
			var v dag.RunView
			if dec.Decode(&v) != nil {
				return
			}
			views <- v
		}
	}()
	next := func(what string, cond func(dag.RunView) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case v, ok := <-views:
				if !ok {
					t.Fatalf("stream ended before %s", what)
				}
				if cond(v) {
					return
				}
			case <-timeout:
				t.Fatalf("no view with %s", what)
			}
		}
	}
	next("a queued", func(v dag.RunView) bool {
		return v.State == dag.RunRunning && v.TaskInstances[0].State == activity.StateQueued
	})
	f.finish(f.tryTake("q", 5*time.Second), activity.StateSuccess, nil)
	next("a success and b queued", func(v dag.RunView) bool {
		return v.TaskInstances[0].State == activity.StateSuccess && v.TaskInstances[1].State == activity.StateQueued
	})
	f.finish(f.tryTake("q", 5*time.Second), activity.StateSuccess, nil)
	next("the run's success", func(v dag.RunView) bool { return v.State == dag.RunSuccess })
	select {
	case _, ok := <-views:
		if ok {
			t.Fatal("a view after the run ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with the run")
	}
	if st := f.api("GET", "/api/v1/dags/watched/runs/nope/watch", nil, nil); st != http.StatusNotFound {
		t.Fatalf("watch of no run: %d", st)
	}
}

// TestDagTwoExecutorsEachOneEnd: two upstreams of a fan-in end at the same
// moment, each recorded by another executor replica; whichever evaluates
// last (having seen the other's end through its record watch) queues the
// downstream, exactly once — ten runs over.
func TestDagTwoExecutorsEachOneEnd(t *testing.T) {
	t.Parallel()
	f1 := newFixture(t, queue.Config{}, Config{ScanInterval: time.Hour})
	f2 := startOn(t, f1.q, Config{ScanInterval: time.Hour})
	f1.putDag("dag_id: pair\ntasks:\n  - {task_id: a, queue: q, command: [true]}\n" +
		"  - {task_id: b, queue: q, command: [true], depends_on: [a]}\n  - {task_id: c, queue: q, command: [true], depends_on: [a]}\n" +
		"  - {task_id: d, queue: q, command: [true], depends_on: [b, c]}\n")
	for i := range 10 {
		runID := fmt.Sprintf("r%d", i)
		f1.api("POST", "/api/v1/dags/pair/runs", []byte(`{"run_id":"`+runID+`"}`), nil)
		a := f1.tryTake("q", 5*time.Second)
		if a == nil || a.TI.TaskID != "a" {
			t.Fatalf("%s: first activity %+v", runID, a)
		}
		f1.finish(a, activity.StateSuccess, nil)
		x, y := f1.tryTake("q", 5*time.Second), f1.tryTake("q", 5*time.Second)
		if x == nil || y == nil {
			t.Fatalf("%s: b and c not both queued", runID)
		}
		var wg sync.WaitGroup
		for _, p := range []struct {
			f   *fixture
			act *activity.ExecuteTask
		}{{f1, x}, {f2, y}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.f.finish(p.act, activity.StateSuccess, nil)
			}()
		}
		wg.Wait()
		d := f1.tryTake("q", 10*time.Second)
		if d == nil || d.TI.TaskID != "d" {
			t.Fatalf("%s: after b and c: %+v", runID, d)
		}
		if again := f1.tryTake("q", 200*time.Millisecond); again != nil {
			t.Fatalf("%s: %s queued again", runID, again.TI.TaskID)
		}
		f1.finish(d, activity.StateSuccess, nil)
		if v := f1.waitRun("pair", runID, func(v dag.RunView) bool { return v.State.Finished() }); v.State != dag.RunSuccess {
			t.Fatalf("%s: %s: %s", runID, v.State, tiStates(v))
		}
	}
}
