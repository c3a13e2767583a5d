package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/dag"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/internal/natstest"
	"github.com/taskwire/taskwire/queue"
)

// setPool sets a pool through the public API.
func (f *fixture) setPool(name string, slots int, includeDeferred bool) activity.Pool {
	f.t.Helper()
	b, _ := json.Marshal(map[string]any{"slots": slots, "include_deferred": includeDeferred})
	req, _ := http.NewRequestWithContext(f.t.Context(), http.MethodPut, f.srv.URL+"/api/v1/pools/"+name, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("PUT pool %s: %s", name, resp.Status)
	}
	var p activity.Pool
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) pool(name string) activity.Pool {
	f.t.Helper()
	resp, err := http.Get(f.srv.URL + "/api/v1/pools/" + name)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var p activity.Pool
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// start runs an activity as a worker would and returns its task token.
func (f *fixture) start(act *activity.ExecuteTask) string {
	f.t.Helper()
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(f.t.Context(), act.Token, act.TI.ID, req)
	if err != nil {
		f.t.Fatal(err)
	}
	return rr.Token
}

func (f *fixture) end(id, token string) {
	f.t.Helper()
	if err := f.ec.Task(id, token).State(f.t.Context(), execution.StateRequest{State: activity.StateSuccess}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) waitPool(name string, cond func(activity.Pool) bool) activity.Pool {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := f.pool(name)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting on pool %s: %+v", name, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var poolCmd = activity.Entrypoint{Command: []string{"x"}}

// Two executor replicas admit tasks of one pool: never more than its
// slots are handed out, waiting tasks say so, a finished task's slot goes
// to the next, and a resize takes effect at once.
func TestPoolLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	ns := natstest.RunServer(t)
	newQ := func() *queue.Client {
		qc, err := queue.New(t.Context(), natstest.Connect(t, ns), queue.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return qc
	}
	a, b := startOn(t, newQ(), Config{}), startOn(t, newQ(), Config{})
	if _, err := a.ex.Submit(t.Context(), activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "db"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("submit to a pool that does not exist: %v", err)
	}
	a.setPool("db", 2, false)
	b.waitPool("db", func(p activity.Pool) bool { return p.Slots == 2 })
	var ids []string
	for i := range 6 {
		f := a
		if i%2 == 1 {
			f = b
		}
		ids = append(ids, f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "db"}).ID)
	}
	running := map[string]string{}
	for range 2 {
		act := a.tryTake("q", 5*time.Second)
		if act == nil {
			t.Fatal("fewer than 2 activities published for a pool of 2")
		}
		running[act.TI.ID] = a.start(act)
	}
	if act := a.tryTake("q", 300*time.Millisecond); act != nil {
		t.Fatalf("a third activity published for a pool of 2: %s", act.TI.ID)
	}
	p := b.waitPool("db", func(p activity.Pool) bool { return p.Running == 2 && p.Waiting == 4 })
	if p.Occupied != 2 || p.Open != 0 || p.WaitingSlots != 4 {
		t.Errorf("pool %+v", p)
	}
	waiting := 0
	for _, id := range ids {
		if _, ok := running[id]; ok {
			continue
		}
		resp, err := http.Get(b.srv.URL + "/api/v1/task-instances/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var ti activity.TaskInstance
		_ = json.NewDecoder(resp.Body).Decode(&ti)
		resp.Body.Close()
		if ti.State == activity.StateQueued && strings.Contains(ti.Reason, "waiting for pool db") {
			waiting++
		}
	}
	if waiting != 4 {
		t.Errorf("%d task instances say they wait for pool db, want 4", waiting)
	}
	// A finished task's slot goes to the next one.
	for id, tok := range running {
		b.end(id, tok)
		delete(running, id)
		break
	}
	act := a.tryTake("q", 5*time.Second)
	if act == nil {
		t.Fatal("no activity after a slot was freed")
	}
	running[act.TI.ID] = a.start(act)
	if act := a.tryTake("q", 300*time.Millisecond); act != nil {
		t.Fatalf("an activity beyond the pool's slots: %s", act.TI.ID)
	}
	// Resizing takes effect at once.
	b.setPool("db", 4, false)
	for range 2 {
		act := a.tryTake("q", 5*time.Second)
		if act == nil {
			t.Fatal("no activity after the pool grew")
		}
		running[act.TI.ID] = a.start(act)
	}
	if act := a.tryTake("q", 300*time.Millisecond); act != nil {
		t.Fatalf("an activity beyond the grown pool's slots: %s", act.TI.ID)
	}
	a.waitPool("db", func(p activity.Pool) bool { return p.Running == 4 && p.Waiting == 1 && p.Occupied == 4 })
	for id, tok := range running {
		a.end(id, tok)
	}
	act = a.tryTake("q", 5*time.Second)
	if act == nil {
		t.Fatal("the last task was not admitted")
	}
	a.end(act.TI.ID, a.start(act))
	a.waitPool("db", func(p activity.Pool) bool { return p.Occupied == 0 && p.Waiting == 0 && p.Running == 0 })
}

// Among tasks waiting for a pool the highest priority_weight goes first,
// ties first come first served.
func TestPoolPriority(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.setPool("one", 1, false)
	f.waitPool("one", func(p activity.Pool) bool { return p.Slots == 1 })
	low, high := 1, 10
	first := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one", PriorityWeight: &low})
	act := f.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != first.ID {
		t.Fatalf("first activity %+v, want %s", act, first.ID)
	}
	tok := f.start(act)
	var lows []string
	for range 50 {
		lows = append(lows, f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one", PriorityWeight: &low}).ID)
	}
	hi := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one", PriorityWeight: &high})
	f.waitPool("one", func(p activity.Pool) bool { return p.Waiting == 51 })
	f.end(first.ID, tok)
	act = f.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != hi.ID {
		idx := -1
		for i, id := range lows {
			if act != nil && id == act.TI.ID {
				idx = i
			}
		}
		p := f.pool("one")
		t.Fatalf("after the first: low %d (%v), want the high-priority %s; pool %+v; rec %+v", idx, act != nil, hi.ID, p, f.ex.pools.recs["one"].rec.Holders)
	}
	f.end(act.TI.ID, f.start(act))
	// Then the low ones, first come first served.
	for i := range 3 {
		act = f.tryTake("q", 5*time.Second)
		if act == nil || act.TI.ID != lows[i] {
			t.Fatalf("low %d: %+v, want %s", i, act, lows[i])
		}
		f.end(act.TI.ID, f.start(act))
	}
}

// A deferred task gives its slot back unless the pool includes deferred
// tasks.
func TestPoolDeferralFreesSlot(t *testing.T) {
	t.Parallel()
	for _, include := range []bool{false, true} {
		f := newFixture(t, queue.Config{}, Config{})
		f.setPool("p", 1, include)
		f.waitPool("p", func(p activity.Pool) bool { return p.Slots == 1 })
		d := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "p"})
		act := f.tryTake("q", 5*time.Second)
		tok := f.start(act)
		err := f.ec.Task(d.ID, tok).State(t.Context(), execution.StateRequest{State: activity.StateDeferred,
			Trigger: &activity.Trigger{Classpath: "airflow.triggers.temporal.TimeDeltaTrigger", Kwargs: map[string]any{"delta": "1h"}}, NextMethod: "done"})
		if err != nil {
			t.Fatal(err)
		}
		other := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "p"})
		act = f.tryTake("q", time.Second)
		switch {
		case !include && (act == nil || act.TI.ID != other.ID):
			t.Errorf("include_deferred=false: a deferred task kept its slot (%+v)", act)
		case include && act != nil:
			t.Errorf("include_deferred=true: a task was admitted while the deferred one holds the slot")
		}
		if include {
			p := f.waitPool("p", func(p activity.Pool) bool { return p.Deferred == 1 && p.Waiting == 1 })
			if p.Occupied != 1 {
				t.Errorf("pool %+v", p)
			}
		}
	}
}

func (f *fixture) put(path string, body any) int {
	f.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(f.t.Context(), http.MethodPut, f.srv.URL+path, bytes.NewReader(b))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// takeN takes activities of q until none comes within 300ms (after the
// first n, each within 5s) and returns them.
func (f *fixture) takeN(q string, n int) []*activity.ExecuteTask {
	f.t.Helper()
	var out []*activity.ExecuteTask
	for {
		wait := 300 * time.Millisecond
		if len(out) < n {
			wait = 5 * time.Second
		}
		act := f.tryTake(q, wait)
		if act == nil {
			return out
		}
		out = append(out, act)
	}
}

// A queue's max_running and a task's max_active_tis_per_dag bound
// admission like a pool, and together with a pool a task needs all.
func TestQueueAndTaskLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	if st := f.put("/api/v1/queues/lq", map[string]int{"max_running": 2}); st != http.StatusOK {
		t.Fatalf("PUT queue: %d", st)
	}
	if st := f.put("/api/v1/queues/lq", map[string]int{"max_running": -1}); st != http.StatusBadRequest {
		t.Errorf("PUT queue max_running -1: %d, want 400", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.ex.pools.queueMaxRunning()["lq"] != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for range 4 {
		f.submit(activity.TaskSpec{Queue: "lq", Entrypoint: poolCmd})
	}
	acts := f.takeN("lq", 2)
	if len(acts) != 2 {
		t.Fatalf("%d activities for a queue of max_running 2", len(acts))
	}
	f.end(acts[0].TI.ID, f.start(acts[0]))
	if got := f.takeN("lq", 1); len(got) != 1 {
		t.Fatalf("%d activities after one of the queue's tasks ended, want 1", len(got))
	}
	if n := f.ex.pools.waitingByQueue()["lq"]; n != 1 {
		t.Errorf("%d waiting on queue lq, want 1", n)
	}
	// Removing the bound releases the rest.
	if st := f.put("/api/v1/queues/lq", map[string]int{"max_running": 0}); st != http.StatusOK {
		t.Fatalf("PUT queue: %d", st)
	}
	if got := f.takeN("lq", 1); len(got) != 1 {
		t.Fatalf("%d activities after the bound was removed, want 1", len(got))
	}

	// max_active_tis_per_dag: one instance of d.t across runs.
	var ids []string
	for i := range 3 {
		ti := f.submit(activity.TaskSpec{Queue: "tq", DagID: "d", TaskID: "t", RunID: "r" + string(rune('1'+i)), Entrypoint: poolCmd, MaxActiveTisPerDag: 1})
		ids = append(ids, ti.ID)
	}
	other := f.submit(activity.TaskSpec{Queue: "tq", DagID: "d", TaskID: "u", Entrypoint: poolCmd})
	got := f.takeN("tq", 2)
	if len(got) != 2 {
		t.Fatalf("%d activities, want one of d.t and d.u", len(got))
	}
	var tAct *activity.ExecuteTask
	for _, a := range got {
		if a.TI.TaskID == "t" {
			tAct = a
		} else if a.TI.ID != other.ID {
			t.Errorf("unexpected activity %s", a.TI.ID)
		}
	}
	if tAct == nil {
		t.Fatal("no instance of d.t admitted")
	}
	ti, _ := f.ex.Get(t.Context(), ids[1])
	if why := f.ex.withAdmission(ti).Reason; !strings.Contains(why, "max_active_tis_per_dag of d.t") {
		t.Errorf("waiting reason %q", why)
	}
	f.end(tAct.TI.ID, f.start(tAct))
	if got := f.takeN("tq", 1); len(got) != 1 || got[0].TI.TaskID != "t" {
		t.Fatalf("after d.t's instance ended: %d activities, want the next of d.t", len(got))
	}

	// A pool and a queue bound together: the smaller wins.
	f.setPool("p1", 1, false)
	if st := f.put("/api/v1/queues/pq", map[string]int{"max_running": 5}); st != http.StatusOK {
		t.Fatalf("PUT queue: %d", st)
	}
	f.waitPool("p1", func(p activity.Pool) bool { return p.Slots == 1 })
	for range 3 {
		f.submit(activity.TaskSpec{Queue: "pq", Entrypoint: poolCmd, Pool: "p1"})
	}
	if got := f.takeN("pq", 1); len(got) != 1 {
		t.Fatalf("%d activities through a pool of 1 and a queue of 5", len(got))
	}
}

// taskwire_pool_slots shows each pool's slots by state.
func TestPoolSlotsMetric(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	f := newFixture(t, queue.Config{}, Config{Metrics: NewMetrics(reg)})
	f.setPool("m", 2, false)
	f.waitPool("m", func(p activity.Pool) bool { return p.Slots == 2 })
	for range 3 {
		f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "m"})
	}
	f.waitPool("m", func(p activity.Pool) bool { return p.Occupied == 2 && p.Waiting == 1 })
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != MetricPoolSlots {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pool, state string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "pool":
					pool = l.GetValue()
				case "state":
					state = l.GetValue()
				}
			}
			got[pool+"/"+state] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{"m/total": 2, "m/occupied": 2, "m/open": 0, "m/waiting": 1, "default_pool/total": -1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s{%s} = %v, want %v (all: %v)", MetricPoolSlots, k, got[k], v, got)
		}
	}
}

// DAG tasks take their pool, pool_slots, priority_weight and
// max_active_tis_per_dag from the DAG file: three parallel tasks in a pool
// of 1 run one at a time, the heaviest first, and the run succeeds. (The
// pool has 0 slots until all three wait: admission orders those waiting,
// not those still to come.)
func TestDagTasksInAPool(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.setPool("dagpool", 0, false)
	f.waitPool("dagpool", func(p activity.Pool) bool { return p.Slots == 0 })
	f.putDag(`dag_id: pooled
default_args: {pool: dagpool, queue: dq}
tasks:
  - {task_id: a, command: [true], priority_weight: 1}
  - {task_id: b, command: [true], priority_weight: 5}
  - {task_id: c, command: [true], priority_weight: 3, max_active_tis_per_dag: 1}
`)
	if st := f.api("POST", "/api/v1/dags/pooled/runs", []byte(`{"run_id":"r1"}`), nil); st != http.StatusCreated {
		t.Fatalf("trigger: %d", st)
	}
	f.waitPool("dagpool", func(p activity.Pool) bool { return p.Waiting == 3 })
	f.setPool("dagpool", 1, false)
	var order []string
	for range 3 {
		acts := f.takeN("dq", 1)
		if len(acts) != 1 {
			t.Fatalf("%d activities at once through a pool of 1 (after %v)", len(acts), order)
		}
		order = append(order, acts[0].TI.TaskID)
		f.finish(acts[0], activity.StateSuccess, nil)
	}
	if got := strings.Join(order, ","); got != "b,c,a" {
		t.Errorf("order %s, want b,c,a (highest priority_weight first)", got)
	}
	f.waitRun("pooled", "r1", func(v dag.RunView) bool { return v.State == dag.RunSuccess })
}

// default_pool, which has no record until it is set, lists a deferred
// task of its own (GET /api/v1/pools answered a closed connection: a nil
// record was read).
func TestDefaultPoolWithDeferredTask(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ti := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd})
	act := f.tryTake("q", 5*time.Second)
	tok := f.start(act)
	if err := f.ec.Task(ti.ID, tok).State(t.Context(), execution.StateRequest{State: activity.StateDeferred,
		Trigger: &activity.Trigger{Classpath: "airflow.triggers.temporal.TimeDeltaTrigger", Kwargs: map[string]any{"delta": "1h"}}, NextMethod: "done"}); err != nil {
		t.Fatal(err)
	}
	p := f.waitPool(activity.DefaultPool, func(p activity.Pool) bool { return p.Deferred == 1 })
	if p.Slots != -1 || p.Open != -1 {
		t.Errorf("default_pool %+v, want no limit", p)
	}
}

// A holder's slot is released when its finished record has already left
// the store's LRU of finished records (--record-cache) by the time the
// admission pass judges it: slot accounting does not depend on the cache.
func TestPoolHolderEvictedFromRecordCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	s := newStore(f.q.Bucket(queue.BucketTaskInstances), f.q.Bucket(queue.BucketConfig), 1, f.ex.log)
	p := newPools(f.q.Bucket(queue.BucketPools), s, f.ex.log)
	s.subscribe(p.observe)
	p.remember("p", &poolRecord{Slots: 1}, 1)
	x := &activity.TaskInstance{ID: "x", Queue: "q", Pool: "p", Dispatch: 1, State: activity.StateRunning}
	s.remember(x, nil, 1, nil)
	ended := *x
	ended.State = activity.StateSuccess
	s.remember(&ended, nil, 2, nil)
	// Another finished record pushes x out of a cache of one.
	s.remember(&activity.TaskInstance{ID: "y", Queue: "q", State: activity.StateSuccess}, nil, 3, nil)
	if _, ok := s.cached("x"); ok {
		t.Fatal("x still cached: the test does not evict it")
	}
	waiting := &activity.TaskInstance{ID: "w", Queue: "q", Pool: "p", Dispatch: 1, State: activity.StateQueued}
	s.remember(waiting, nil, 4, nil)
	rec := &poolRecord{Slots: 1, Holders: map[string]poolHolder{"x": {Dispatch: 1, Slots: 1, Since: time.Now()}}}
	next, admitted, _, changed := p.admit("p", rec)
	if _, held := next.Holders["x"]; held || !changed {
		t.Fatalf("the evicted finished holder keeps its slot: %+v", next.Holders)
	}
	if len(admitted) != 1 || admitted[0].ID != "w" {
		t.Fatalf("admitted %v, want w in x's slot", admitted)
	}
}

// End to end with a record cache of one finished record: every task of a
// pool of one is admitted in turn while other tasks' ends churn the cache.
func TestPoolWithSmallRecordCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{RecordCache: 1})
	f.setPool("one", 1, false)
	f.waitPool("one", func(p activity.Pool) bool { return p.Slots == 1 })
	var ids []string
	for range 4 {
		ids = append(ids, f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one"}).ID)
	}
	for i := range ids {
		act := f.tryTake("q", 5*time.Second)
		if act == nil {
			t.Fatalf("task %d not admitted within 5s (its slot held by an evicted record?)", i)
		}
		tok := f.start(act)
		// Unpooled tasks end meanwhile: the cache of one keeps only them.
		for range 2 {
			f.submit(activity.TaskSpec{Queue: "other", Entrypoint: poolCmd})
			o := f.tryTake("other", 5*time.Second)
			if o == nil {
				t.Fatal("no activity on other")
			}
			f.end(o.TI.ID, f.start(o))
		}
		f.end(act.TI.ID, tok)
	}
	f.waitPool("one", func(p activity.Pool) bool { return p.Occupied == 0 && p.Waiting == 0 })
}

// A task that needs fewer slots is admitted past any number of waiting
// tasks that need more than are open, however many stand in front of it
// (the pass reads the first few waiting, then all of them).
func TestPoolSmallTaskPassesBigOnes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.setPool("p", 2, false)
	f.waitPool("p", func(p activity.Pool) bool { return p.Slots == 2 })
	first := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "p"})
	act := f.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != first.ID {
		t.Fatalf("first activity %+v, want %s", act, first.ID)
	}
	tok := f.start(act)
	high, low := 10, 1
	var bigs []string
	for range 60 {
		bigs = append(bigs, f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "p", PoolSlots: 2, PriorityWeight: &high}).ID)
	}
	small := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "p", PriorityWeight: &low})
	act = f.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != small.ID {
		t.Fatalf("activity %+v, want the one-slot task %s (1 slot open)", act, small.ID)
	}
	if act := f.tryTake("q", 300*time.Millisecond); act != nil {
		t.Fatalf("an activity beyond the pool's slots: %s", act.TI.ID)
	}
	f.end(act.TI.ID, f.start(act))
	f.end(first.ID, tok)
	// Both slots open: the first two-slot task, alone.
	if got := f.takeN("q", 1); len(got) != 1 || got[0].TI.ID != bigs[0] {
		t.Fatalf("after both ended: %d activities, want the first two-slot task alone", len(got))
	}
}

// An executor that stops between a task's admission (the pool record
// written) and its publish leaves a holder: a replica started on the
// cluster publishes it at once (not after poolRepublishAfter), and once.
func TestPoolAdmittedUnpublishedAfterRestart(t *testing.T) {
	t.Parallel()
	var dropped atomic.Int32
	a := newFixture(t, queue.Config{}, Config{}, func(e *Executor) {
		// Dies after its CAS: nothing it admits is sent.
		e.pools.publish = func(context.Context, *activity.TaskInstance) (func() error, error) {
			dropped.Add(1)
			return func() error { return nil }, nil
		}
	})
	a.setPool("p", 1, false)
	a.waitPool("p", func(p activity.Pool) bool { return p.Slots == 1 })
	ti := a.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "p"})
	a.waitPool("p", func(p activity.Pool) bool { return p.Queued == 1 && p.Occupied == 1 })
	if act := a.tryTake("q", 300*time.Millisecond); act != nil || dropped.Load() == 0 {
		t.Fatalf("activity %+v, %d dropped: want the admission's publish dropped", act, dropped.Load())
	}
	if err := a.ex.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := startOn(t, a.q, Config{})
	began := time.Now()
	act := b.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != ti.ID {
		t.Fatalf("activity %+v after the restart, want %s", act, ti.ID)
	}
	if d := time.Since(began); d >= poolRepublishAfter {
		t.Errorf("published %v after the restart", d)
	}
	b.end(ti.ID, b.start(act))
	if act := b.tryTake("q", 300*time.Millisecond); act != nil {
		t.Fatalf("a second copy: %+v", act)
	}
	b.waitPool("p", func(p activity.Pool) bool { return p.Occupied == 0 })
}

// The replica that writes a task's end gives its slot to the next task
// while that write is under way (early release), but publishes the next
// task only once the record has ended: whenever a task's activity
// arrives, the one before it in a pool of one has ended.
func TestPoolEarlyReleasePublishesAfterEnd(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.setPool("one", 1, false)
	f.waitPool("one", func(p activity.Pool) bool { return p.Slots == 1 })
	f.ex.AdmissionLatencies()
	const n = 30
	for range n {
		f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one"})
	}
	prev := ""
	for i := range n {
		act := f.tryTake("q", 5*time.Second)
		if act == nil {
			t.Fatalf("task %d not published", i)
		}
		if prev != "" {
			if c, ok := f.ex.store.cached(prev); !ok || c.ti.State != activity.StateSuccess {
				t.Fatalf("task %d published before the one before it ended (%+v)", i, c.ti)
			}
		}
		f.end(act.TI.ID, f.start(act))
		prev = act.TI.ID
	}
	early := 0
	samples := f.ex.AdmissionLatencies()
	for _, s := range samples {
		if s.Early {
			early++
		}
		if s.Sent <= 0 || s.Sent > s.Total {
			t.Errorf("sample %+v: the publish issued is not between the slot freed and the acknowledgement", s)
		}
	}
	t.Logf("%d samples of %d admissions into a freed slot, %d released early", len(samples), n-1, early)
	if early == 0 {
		t.Error("no admission released its slot early")
	}
	// Every admission into a freed slot is sampled, whether the record
	// ended before the pool record's write was acknowledged or after (a
	// sample lost to a race between the two is let pass).
	if len(samples) < n-3 {
		t.Errorf("%d admission samples, want about %d", len(samples), n-1)
	}
}

// A task whose slot was released early but whose end was not written
// (the write failed) keeps the task admitted in its slot waiting until
// its record ends.
func TestPoolEarlyReleaseWaitsForTheRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	f.setPool("one", 1, false)
	f.waitPool("one", func(p activity.Pool) bool { return p.Slots == 1 })
	a := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one"})
	act := f.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != a.ID {
		t.Fatalf("activity %+v, want %s", act, a.ID)
	}
	tok := f.start(act)
	b := f.submit(activity.TaskSpec{Queue: "q", Entrypoint: poolCmd, Pool: "one"})
	f.waitPool("one", func(p activity.Pool) bool { return p.Running == 1 && p.Waiting == 1 })
	c, _ := f.ex.store.cached(a.ID)
	settled := f.ex.pools.ending(c.ti) // a report whose write then fails
	f.waitPool("one", func(p activity.Pool) bool { return p.Queued == 1 && p.Waiting == 0 })
	settled()
	if act := f.tryTake("q", 300*time.Millisecond); act != nil {
		t.Fatalf("%s published while %s is still running", act.TI.ID, a.ID)
	}
	f.end(a.ID, tok)
	act = f.tryTake("q", 5*time.Second)
	if act == nil || act.TI.ID != b.ID {
		t.Fatalf("activity %+v after the end was written, want %s", act, b.ID)
	}
	f.end(b.ID, f.start(act))
	f.waitPool("one", func(p activity.Pool) bool { return p.Occupied == 0 })
}
