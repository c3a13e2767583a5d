package executor

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskwire/taskwire/activity"
	"github.com/taskwire/taskwire/execution"
	"github.com/taskwire/taskwire/queue"
)

// running submits spec on queue q, takes its activity and runs it as worker
// "w" would: it returns the task instance and a client acting for the try.
func (f *fixture) running(spec activity.TaskSpec) (*activity.TaskInstance, *execution.TaskClient) {
	f.t.Helper()
	ti := f.submit(spec)
	act, m := f.take(spec.Queue)
	_ = m.Ack()
	if act.TI.ID != ti.ID {
		f.t.Fatalf("took the activity of %s, want %s", act.TI.ID, ti.ID)
	}
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(f.t.Context(), act.Token, ti.ID, req)
	if err != nil {
		f.t.Fatal(err)
	}
	return ti, f.ec.Task(ti.ID, rr.Token)
}

func taskSpec(q, dag, run, task string) activity.TaskSpec {
	return activity.TaskSpec{Queue: q, DagID: dag, RunID: run, TaskID: task,
		Entrypoint: activity.Entrypoint{Command: []string{"x"}}}
}

// A task's execution token acts only on its own task instance and try:
// another task's state, heartbeat and XComs (outside its DAG run, or
// writes to another task's) answer 403 and change nothing; a token of a try
// that is over, or of an earlier try, reads and writes nothing.
func TestTokenActsOnlyOnItsOwnTaskAndTry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ctx := t.Context()
	hb := execution.HeartbeatRequest{Hostname: "h", PID: 7, WorkerID: "w"}

	a, ta := f.running(taskSpec("qa", "etl", "run1", "extract"))
	b, tb := f.running(taskSpec("qb", "etl", "run1", "load"))
	c, tc := f.running(taskSpec("qc", "other", "run9", "report"))
	asA := func(id string) *execution.TaskClient { return f.ec.Task(id, ta.Token()) }
	xk := func(dag, run, task, key string, mapIndex int) execution.XComKey {
		return execution.XComKey{DagID: dag, RunID: run, TaskID: task, Key: key, MapIndex: mapIndex}
	}
	for _, tk := range []struct {
		tc  *execution.TaskClient
		key execution.XComKey
	}{{tb, xk("etl", "run1", "load", "rows", -1)}, {tc, xk("other", "run9", "report", "secret", -1)}} {
		if err := tk.tc.SetXCom(ctx, tk.key, "theirs"); err != nil {
			t.Fatalf("own xcom %+v: %v", tk.key, err)
		}
	}

	before := map[string]*activity.TaskInstance{}
	for _, ti := range []*activity.TaskInstance{b, c} {
		before[ti.ID], _ = f.ex.Get(ctx, ti.ID)
	}
	if st, err := ta.GetState(ctx); err != nil || st.State != activity.StateRunning || st.TryNumber != 1 {
		t.Fatalf("own state: %+v, %v", st, err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"read_other_state", func() error { _, err := asA(b.ID).GetState(ctx); return err }, execution.ErrForbidden},
		{"write_other_state", func() error {
			return asA(b.ID).State(ctx, execution.StateRequest{State: activity.StateFailed, EndDate: time.Now()})
		}, execution.ErrForbidden},
		{"other_heartbeat", func() error { return asA(c.ID).Heartbeat(ctx, hb) }, execution.ErrForbidden},
		{"write_other_task_xcom", func() error { return ta.SetXCom(ctx, xk("etl", "run1", "load", "rows", -1), "mine") }, execution.ErrForbidden},
		{"delete_other_task_xcom", func() error { return ta.DeleteXCom(ctx, xk("etl", "run1", "load", "rows", -1)) }, execution.ErrForbidden},
		{"write_other_map_index", func() error { return ta.SetXCom(ctx, xk("etl", "run1", "extract", "k", 3), 1) }, execution.ErrForbidden},
		{"read_other_run_xcom", func() error { _, err := ta.XCom(ctx, xk("other", "run9", "report", "secret", -1)); return err }, execution.ErrForbidden},
		{"read_same_dag_other_run", func() error { _, err := ta.XCom(ctx, xk("etl", "run2", "load", "rows", -1)); return err }, execution.ErrForbidden},
		{"write_other_run_xcom", func() error { return ta.SetXCom(ctx, xk("other", "run9", "extract", "k", -1), 1) }, execution.ErrForbidden},
		{"workload_token_on_xcom", func() error {
			_, err := f.ec.Task(a.ID, "not-a-token").XCom(ctx, xk("etl", "run1", "load", "rows", -1))
			return err
		}, execution.ErrUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Reading another task's XCom of its own run is allowed (xcom_pull).
	if v, err := ta.XCom(ctx, xk("etl", "run1", "load", "rows", -1)); err != nil || v != "theirs" {
		t.Errorf("xcom of a task of its own run: %v, %v", v, err)
	}
	// Nothing of theirs changed.
	for _, tk := range []struct {
		tc  *execution.TaskClient
		key execution.XComKey
	}{{tb, xk("etl", "run1", "load", "rows", -1)}, {tc, xk("other", "run9", "report", "secret", -1)}} {
		if v, err := tk.tc.XCom(ctx, tk.key); err != nil || v != "theirs" {
			t.Errorf("their xcom %+v after the attempts: %v, %v", tk.key, v, err)
		}
	}
	for _, ti := range []*activity.TaskInstance{b, c} {
		got, _ := f.ex.Get(ctx, ti.ID)
		if was := before[ti.ID]; got.State != activity.StateRunning || !got.HeartbeatAt.Equal(*was.HeartbeatAt) {
			t.Errorf("%s after the attempts: %s, heartbeat %v (was %v)", ti.ID, got.State, got.HeartbeatAt, was.HeartbeatAt)
		}
	}

	// A try that is over: its token reads and writes nothing more.
	if err := ta.SetXCom(ctx, xk("etl", "run1", "extract", "out", -1), 1); err != nil {
		t.Fatal(err)
	}
	if err := ta.State(ctx, execution.StateRequest{State: activity.StateSuccess, EndDate: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := ta.SetXCom(ctx, xk("etl", "run1", "extract", "out", -1), 2); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("xcom write after success: %v, want 403", err)
	}
	if _, err := ta.Variable(ctx, "v"); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("variable read after success: %v, want 403", err)
	}
	if _, err := ta.Connection(ctx, "db"); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("connection read after success: %v, want 403", err)
	}
}

// The token of an earlier try of the same task instance acts no more once
// the next try runs.
func TestEarlierTryTokenIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, queue.Config{}, Config{})
	ctx := t.Context()
	spec := taskSpec("q", "d", "r", "t")
	spec.RetryPolicy = activity.RetryPolicy{Retries: 1, Delay: activity.Duration(10 * time.Millisecond)}
	ti, t1 := f.running(spec)
	if err := t1.State(ctx, execution.StateRequest{State: activity.StateUpForRetry, Reason: "exit 1"}); err != nil {
		t.Fatal(err)
	}
	act, m := f.take("q")
	_ = m.Ack()
	req := runReq
	req.ActivityID = act.ID
	rr, err := f.ec.Run(ctx, act.Token, ti.ID, req)
	if err != nil {
		t.Fatal(err)
	}
	t2 := f.ec.Task(ti.ID, rr.Token)
	k := execution.XComKey{DagID: "d", RunID: "r", TaskID: "t", Key: "k", MapIndex: -1}
	if err := t1.SetXCom(ctx, k, "from try 1"); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("try 1's token writing an xcom during try 2: %v, want 403", err)
	}
	if _, err := t1.Variable(ctx, "v"); !errors.Is(err, execution.ErrForbidden) {
		t.Errorf("try 1's token reading a variable during try 2: %v, want 403", err)
	}
	if err := t2.SetXCom(ctx, k, "from try 2"); err != nil {
		t.Fatalf("try 2's own xcom: %v", err)
	}
	if v, err := t2.XCom(ctx, k); err != nil || v != "from try 2" {
		t.Errorf("xcom after the attempts: %v, %v", v, err)
	}
}

// Tokens that are expired, signed with another key, or of the wrong kind
// answer 401 on every Execution API route; a token is refreshed when half
// spent, so a long task's heartbeats keep it valid.
func TestBadTokensAre401(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	f := newFixture(t, queue.Config{}, Config{ExecutionTokenTTL: time.Minute, ZombieThreshold: time.Hour}, clock.use)
	ctx := t.Context()
	ti, tc := f.running(taskSpec("q", "d", "r", "t"))

	forger := tokens{key: []byte("another-key-another-key-another-k"), now: clock.Now}
	forged, err := forger.issue(audExecution, ti.ID, 1, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": ti.ID, "aud": audExecution,
		"iss": issuer, "try": 1, "exp": clock.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	workload, err := f.ex.tokens.issue(audWorkload, ti.ID, 1, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := f.ex.tokens.issue(audExecution, ti.ID, 1, "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(2 * time.Minute)
	k := execution.XComKey{DagID: "d", RunID: "r", TaskID: "t", Key: "k", MapIndex: -1}
	for name, tok := range map[string]string{"forged": forged, "alg_none": none, "workload": workload, "expired": expired} {
		t.Run(name, func(t *testing.T) {
			c := f.ec.Task(ti.ID, tok)
			for what, err := range map[string]error{
				"heartbeat":  c.Heartbeat(ctx, execution.HeartbeatRequest{Hostname: "h", PID: 7, WorkerID: "w"}),
				"state":      c.State(ctx, execution.StateRequest{State: activity.StateSuccess}),
				"xcom":       c.SetXCom(ctx, k, 1),
				"variable":   c.PutVariable(ctx, "v", execution.VariableBody{Value: "x"}),
				"connection": func() error { _, err := c.Connection(ctx, "db"); return err }(),
			} {
				if !errors.Is(err, execution.ErrUnauthorized) {
					t.Errorf("%s: %v, want 401", what, err)
				}
			}
		})
	}
	// The task's own token, two minutes on and never refreshed, is expired too.
	if _, err := tc.GetState(ctx); !errors.Is(err, execution.ErrUnauthorized) {
		t.Errorf("the try's token past its ttl: %v, want 401", err)
	}
	if got, _ := f.ex.Get(ctx, ti.ID); got.State != activity.StateRunning {
		t.Errorf("task after bad tokens: %s, want running", got.State)
	}
}
